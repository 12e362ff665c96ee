"""An exact-match response cache for non-streaming requests (``spec.cache``).

The key is the API path plus the request body exactly as the client sent it,
hashed; only complete 200 answers are kept, at most ``maxEntries`` of them for
``ttl``, least recently used out first, and none larger than
:data:`MAX_ENTRY_BYTES`. A client opts out per request with
``Cache-Control: no-cache`` (skip the lookup) or ``no-store`` (skip both).

Caching is off by default: with a temperature above zero, a cached answer
repeats one sample instead of drawing a new one, which only the route's owner
can decide is fine.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from modelroute.spec.model import Cache

MAX_ENTRY_BYTES = 1024 * 1024

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Entry:
    expires: float
    headers: Headers  # the upstream's headers and who answered, as first sent
    body: bytes


def cache_key(path: str, body: bytes) -> bytes:
    return hashlib.sha256(path.encode() + b"\0" + body).digest()


def cache_directives(headers: dict[bytes, bytes]) -> tuple[bool, bool]:
    """(may look up, may store) from the client's Cache-Control header."""
    value = headers.get(b"cache-control")
    if value is None:
        return True, True
    value = value.lower()
    no_store = b"no-store" in value
    return not (no_store or b"no-cache" in value), not no_store


class ResponseCache:
    """LRU with a TTL; one per router process, rebuilt when ``spec.cache`` changes."""

    def __init__(self, settings: Cache) -> None:
        self.settings = settings
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, headers: Headers, body: bytes, now: float) -> None:
        if len(body) > MAX_ENTRY_BYTES:
            return
        self._entries[key] = Entry(now + self.settings.ttl, headers, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self.settings.max_entries:
            self._entries.popitem(last=False)
