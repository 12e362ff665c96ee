"""Sessions stay put: one conversation keeps its tier and its endpoint.

Providers cache prompt prefixes per deployment (DeepSeek bills a cache hit at
about a quarter of the input price, OpenAI up to 90 % off), and a prefix is
warm only where it was last sent. So requests of one conversation go to the
endpoint (provider, region and key) that answered the last one, while that
endpoint is healthy; health, cooldowns and the filters always come first —
affinity only reorders a plan, it never adds to it. A tiered conversation
keeps its tier too: it may go up within a session, never down (a short
"and why?" after a hard question stays hard).

A conversation is recognised by the client's ``prompt_cache_key`` (which
also passes through to the upstream), an ``x-session-id`` header, or else a
hash of what stays the same across its turns: the system prompt, the tools
and the first user message. Only routes where it matters pay for the key:
tiered models, and chains with more than one endpoint in a region.

The table is per router pod, bounded (least recently used out first) and
forgets a session after an hour without requests.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from modelroute.router.table import TIER_ORDER

SESSION_HEADER = b"x-session-id"
CAPACITY = 100_000
TTL = 3600.0


@dataclass(slots=True)
class Session:
    tier: str | None  # the highest tier this conversation reached
    endpoint: str | None  # Endpoint.key of the last endpoint that answered it
    seen: float


def session_key(headers: dict[bytes, bytes], payload: dict[str, Any]) -> bytes | None:
    """What identifies the conversation this request belongs to; None if nothing does."""
    explicit = payload.get("prompt_cache_key")
    if isinstance(explicit, str) and explicit:
        return b"k:" + explicit.encode()
    header = headers.get(SESSION_HEADER)
    if header:
        return b"h:" + header
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return None
    system = [m for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")]
    first_user = next(
        (m for m in messages if isinstance(m, dict) and m.get("role") == "user"), None
    )
    if first_user is None:
        return None
    digest = hashlib.blake2b(
        orjson.dumps([system, payload.get("tools"), first_user], option=orjson.OPT_SORT_KEYS),
        digest_size=16,
    ).digest()
    return b"c:" + digest


class Sessions:
    """Session key -> Session, least recently used out first."""

    def __init__(self, capacity: int = CAPACITY, ttl: float = TTL) -> None:
        self._entries: OrderedDict[bytes, Session] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> Session | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry.seen > self._ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def remember(self, key: bytes, now: float, tier: str | None, endpoint: str | None) -> None:
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = Session(tier, endpoint, now)
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
            return
        self._entries.move_to_end(key)
        entry.seen = now
        if tier is not None and (entry.tier is None or higher(tier, entry.tier)):
            entry.tier = tier
        if endpoint is not None:
            entry.endpoint = endpoint


def higher(tier: str, than: str) -> bool:
    return TIER_ORDER.index(tier) > TIER_ORDER.index(than)
