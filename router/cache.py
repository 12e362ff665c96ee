"""The response cache (``spec.cache``): which requests, under which key, kept where.

Two tiers: each router's memory (an LRU bounded by entries and bytes) in
front of Redis (when ``spec.redis`` is set: shared by every replica, kept
across restarts). The key is a hash of the canonical request — the API, the
client's tenant (one client key never reads another's answers) and every
field that shapes the answer (model, messages, tools, response_format,
sampling parameters, seed), with key order and the fields that do not shape
it (``stream``, ``stream_options``, ``user``, ``metadata``) left out — so a
streaming and a non-streaming request share one entry, and a cached answer
replays as a well-formed stream (:mod:`.replay`).

Which requests are cached is the route owner's call (``cache.policy``): by
default only deterministic ones — ``temperature: 0``, embeddings, or the
client's explicit ``x-modelroute-cache: use`` — because a cached answer
repeats one sample instead of drawing a new one. Never a request with
``n > 1``. A client opts out per request with ``Cache-Control: no-cache``
(skip the lookup) or ``no-store`` (skip both).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from modelroute.spec.model import Cache

MAX_ENTRY_BYTES = 1024 * 1024
CACHE_HEADER = b"x-modelroute-cache"
_NOT_SHAPING = frozenset({"stream", "stream_options", "user", "metadata", "store"})

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Entry:
    expires: float  # unix time: entries move between routers through Redis
    headers: Headers  # the upstream's headers and who answered, as first sent
    body: bytes  # a complete, non-streaming answer
    cost: float | None = None  # USD the answer cost when it was made (saved by each hit)

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 64

    def dump(self) -> bytes:
        """Serialised for Redis: a JSON head line, then the body as it is."""
        head = {
            "e": self.expires,
            "h": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "c": self.cost,
        }
        return orjson.dumps(head) + b"\n" + self.body

    @staticmethod
    def load(blob: bytes) -> Entry | None:
        head, sep, body = blob.partition(b"\n")
        if not sep:
            return None
        try:
            meta = orjson.loads(head)
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["h"]]
            cost = meta.get("c")
            if not (isinstance(cost, int | float) and 0 <= cost < math.inf):
                cost = None  # counted as saved USD on every hit: a number or nothing
            return Entry(float(meta["e"]), headers, body, cost)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None  # a foreign or damaged value: a miss, never an error


def cache_key(path: str, tenant: str, payload: dict[str, Any] | None, body: bytes) -> bytes:
    """The canonical request's hash; ``payload`` None hashes the raw body (a large body
    read at its top level only)."""
    if payload is None:
        canonical = body
    else:
        shaping = {k: v for k, v in payload.items() if k not in _NOT_SHAPING}
        canonical = orjson.dumps(shaping, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(path.encode() + b"\0" + tenant.encode() + b"\0" + canonical).digest()


def cacheable(settings: Cache, payload: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    n = payload.get("n")
    if n is not None and n != 1:  # several answers (2, 2.0), or what only the upstream judges
        return False
    if settings.policy == "always" or headers.get(CACHE_HEADER, b"").lower() == b"use":
        return True
    if "input" in payload and "messages" not in payload and "prompt" not in payload:
        return True  # embeddings: the same input gives the same vector
    temperature = payload.get("temperature")
    return isinstance(temperature, int | float) and temperature == 0


def cache_directives(headers: dict[bytes, bytes]) -> tuple[bool, bool]:
    """(may look up, may store) from the client's Cache-Control header."""
    value = headers.get(b"cache-control")
    if value is None:
        return True, True
    value = value.lower()
    no_store = b"no-store" in value
    return not (no_store or b"no-cache" in value), not no_store


class MemoryCache:
    """LRU bounded by entries and bytes, with a TTL; one per router process."""

    def __init__(self, settings: Cache) -> None:
        self.settings = settings
        self.bytes = 0
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, entry: Entry) -> None:
        if entry.size > min(MAX_ENTRY_BYTES, self.settings.max_bytes):
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        while len(self._entries) > self.settings.max_entries or (
            self.bytes > self.settings.max_bytes
        ):
            self._drop(next(iter(self._entries)))

    def _drop(self, key: bytes) -> None:
        self.bytes -= self._entries.pop(key).size
