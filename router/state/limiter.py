"""Requests and tokens per minute, per client key: a sliding-window counter.

Each limit counts into the current minute's counter; what the last 60 s
used is estimated as this minute's count plus the previous minute's,
weighted by how much of it still lies inside the window (Cloudflare's
sliding-window counter: no timestamp per request, no boundary burst of twice
the limit). A request takes one unit of each requests limit and its worst
case of tokens (prompt estimate plus ``max_tokens``) of each tokens limit,
all or none; when it completes, the tokens are corrected to what it used.

:class:`RedisLimiter` is one Lua script per decision, shared by every
router; :class:`LocalLimiter` is the same arithmetic in one process, used
without Redis and, while Redis is unreachable, with each router's share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from modelroute.router.state.ledger import integers

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Take:
    """One counter a request draws on."""

    key: str  # base key; the minute's number is appended
    limit: int
    amount: int
    kind: str  # "requests" or "tokens", for the x-ratelimit-* headers
    name: str  # the rate limit's name, for metrics


@dataclass(frozen=True, slots=True)
class Allowed:
    minute: int  # the minute counted into (to correct tokens later)
    remaining: tuple[int, ...]  # per take, after this request
    reset_ms: tuple[int, ...]  # per take, until the window frees what this request took


@dataclass(frozen=True, slots=True)
class Limited:
    index: int  # the take that is over its limit
    retry_after_ms: int


class Limiter(Protocol):
    async def take(self, takes: tuple[Take, ...]) -> Allowed | Limited: ...

    async def correct(self, take: Take, minute: int, delta: int) -> None: ...


def wait_ms(limit: int, prev: int, curr: int, amount: int, elapsed: int) -> int:
    """How long until ``amount`` more fits under ``limit`` (the sliding estimate)."""
    room = limit - curr - amount
    if room >= 0 and prev > 0:
        # prev * (1 - (elapsed + d) / MINUTE) <= room
        return max(1, math.ceil(MINUTE_MS * (1 - room / prev)) - elapsed)
    # Not before the next minute starts; then this minute's count weighs as prev.
    to_next = MINUTE_MS - elapsed
    room_next = limit - amount
    if room_next < 0:
        return MINUTE_MS  # more than the limit at once: never fits; say a minute
    if curr > 0 and curr > room_next:
        return to_next + math.ceil(MINUTE_MS * (1 - room_next / curr))
    return max(1, to_next)


# KEYS: one base key per take. ARGV: per take: limit, amount. The minute comes from
# Redis's clock, so every router agrees on it.
TAKE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minute = math.floor(now / 60000)
local elapsed = now - minute * 60000
local weight = 1 - elapsed / 60000
local counts = {}
for i = 1, #KEYS do
  local limit, amount = tonumber(ARGV[2*i-1]), tonumber(ARGV[2*i])
  local curr = tonumber(redis.call('GET', KEYS[i] .. ':' .. minute) or '0')
  local prev = tonumber(redis.call('GET', KEYS[i] .. ':' .. (minute - 1)) or '0')
  local used = prev * weight + curr
  if used + amount > limit then
    return {0, i - 1, prev, curr, elapsed}
  end
  counts[i] = {prev, curr}
end
local out = {1, minute, elapsed}
for i = 1, #KEYS do
  local key = KEYS[i] .. ':' .. minute
  redis.call('INCRBY', key, tonumber(ARGV[2*i]))
  redis.call('PEXPIRE', key, 130000)
  out[#out + 1] = counts[i][1]
  out[#out + 1] = counts[i][2]
end
return out
"""

CORRECT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
return 1
"""


def allowed_from(
    takes: tuple[Take, ...], minute: int, elapsed: int, counts: list[tuple[int, int]]
) -> Allowed:
    """Remaining and reset per take, from the counts seen before this request's."""
    remaining: list[int] = []
    resets: list[int] = []
    weight = 1 - elapsed / MINUTE_MS
    for take, (prev, curr) in zip(takes, counts, strict=True):
        used = prev * weight + curr + take.amount
        remaining.append(max(0, math.floor(take.limit - used)))
        # Everything counted now is out of the window at the end of the next minute;
        # the previous minute's share is gone at the end of this one.
        resets.append(MINUTE_MS - elapsed if curr + take.amount == 0 else 2 * MINUTE_MS - elapsed)
    return Allowed(minute, tuple(remaining), tuple(resets))


def parse_take(takes: tuple[Take, ...], reply: object) -> Allowed | Limited:
    values = integers(reply, "rate limit")
    limited = len(values) == 5 and values[0] == 0 and 0 <= values[1] < len(takes)
    if not limited and (len(values) != 3 + 2 * len(takes) or values[0] != 1):
        raise ValueError(f"unexpected rate limit reply from redis: {values!r:.200}")
    if limited:
        index, prev, curr, elapsed = values[1:5]
        take = takes[index]
        return Limited(index, wait_ms(take.limit, prev, curr, take.amount, elapsed))
    minute, elapsed = values[1], values[2]
    pairs = [(values[3 + 2 * i], values[4 + 2 * i]) for i in range(len(takes))]
    return allowed_from(takes, minute, elapsed, pairs)


class LocalLimiter:
    """The same windows in one process. ``share`` divides every limit (a router's
    part of the route's limit while Redis is unreachable)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, int], int] = {}
        self.share = 1

    def _count(self, key: str, minute: int) -> int:
        return self._counts.get((key, minute), 0)

    async def take(self, takes: tuple[Take, ...]) -> Allowed | Limited:
        return self.take_now(takes)

    def take_now(self, takes: tuple[Take, ...]) -> Allowed | Limited:
        now = int(self._clock() * 1000)
        minute, elapsed = divmod(now, MINUTE_MS)
        if len(self._counts) > 4 * len(takes) + 1024:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= minute - 1}
        weight = 1 - elapsed / MINUTE_MS
        counts: list[tuple[int, int]] = []
        shared = tuple(
            Take(t.key, max(1, t.limit // self.share), t.amount, t.kind, t.name) for t in takes
        )
        for index, take in enumerate(shared):
            prev, curr = self._count(take.key, minute - 1), self._count(take.key, minute)
            if prev * weight + curr + take.amount > take.limit:
                return Limited(index, wait_ms(take.limit, prev, curr, take.amount, elapsed))
            counts.append((prev, curr))
        for take in shared:
            self._counts[(take.key, minute)] = self._count(take.key, minute) + take.amount
        return allowed_from(shared, minute, elapsed, counts)

    async def correct(self, take: Take, minute: int, delta: int) -> None:
        if (take.key, minute) in self._counts:
            self._counts[(take.key, minute)] += delta
