"""Budget accounting: reserve a request's worst case, settle its real cost.

A request counts against every budget whose scope it falls in (the route,
its model, its client key). Before dispatch it reserves its worst-case cost
against all of them at once — all or none, never check-then-set — and when
its ``usage`` arrives the reservation is replaced by the real cost, once per
request id. Reservations expire, so a router that dies mid-request cannot
hold budget forever.

Amounts are integers of nano-USD (1e-9 USD): Redis counts integers exactly,
and 2**53 nano-USD is nine million dollars, far beyond any one window.

Two ledgers share this behaviour: :class:`RedisLedger` (one Lua script per
decision, shared by every router of the route) and :class:`LocalLedger`
(one process: a route without Redis, and the lease a router spends while
Redis is unreachable). The Lua and the Python are the same algorithm; the
tests run one suite against both.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

NANO = 1_000_000_000  # nano-USD per USD
GONE_KEPT_MS = 3_600_000  # how long an expired reservation may still be settled


def to_nano(usd: float) -> int:
    """USD to nano-USD, rounded up: a reservation or a charge never falls short."""
    return math.ceil(usd * NANO - 1e-6)


@dataclass(frozen=True, slots=True)
class Charge:
    """One budget a request counts against, in the window it falls in."""

    budget: str  # the budget's name
    key: str  # where its window is counted (Redis key, or local name)
    limit: int  # nano-USD
    expire_at: int  # unix seconds after which the window's keys may go


@dataclass(frozen=True, slots=True)
class Grant:
    amount: int  # nano-USD reserved (at most what was asked)
    remaining: tuple[int, ...]  # per charge, what is left unreserved after this one
    from_lease: tuple[int, ...] = ()  # per charge, what came out of the router's lease


@dataclass(frozen=True, slots=True)
class Refusal:
    index: int  # the charge that could not give the minimum
    remaining: int  # what that budget has left, nano-USD


class Ledger(Protocol):
    async def reserve(
        self,
        charges: tuple[Charge, ...],
        rid: str,
        want: int,
        minimum: int,
        ttl: float,
        lease: str = "",
    ) -> Grant | Refusal: ...

    async def settle(self, charges: tuple[Charge, ...], rid: str, cost: int) -> None: ...


# KEYS: three per charge: the window's hash (spent, reserved, r:<id> amounts), the
# zset of reservation expiries, the zset of reservations expired but still settleable.
# ARGV: id, ttl ms, want, minimum, lease id ('' for none), then per charge: limit, expire-at.
# The lease (a router's own advance reservation) may be spent by that router's requests
# when nothing else is free: it shrinks by what they take.
RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, ttl = ARGV[1], tonumber(ARGV[2])
local want, minimum, lease = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local n = #KEYS / 3
local grant = want
local free, own = {}, {}
for i = 1, n do
  local h, x, g = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local dead = redis.call('ZRANGEBYSCORE', x, '-inf', now, 'LIMIT', 0, 128)
  for _, rid in ipairs(dead) do
    local amount = tonumber(redis.call('HGET', h, 'r:' .. rid) or '0')
    redis.call('HINCRBY', h, 'reserved', -amount)
    redis.call('HDEL', h, 'r:' .. rid)
    redis.call('ZREM', x, rid)
    redis.call('ZADD', g, now, rid)
  end
  redis.call('ZREMRANGEBYSCORE', g, '-inf', now - {gone_ms})
  local old = tonumber(redis.call('HGET', h, 'r:' .. id) or '0')
  if old > 0 then  -- the same id again (a lease renewed): replace it
    redis.call('HINCRBY', h, 'reserved', -old)
    redis.call('HDEL', h, 'r:' .. id)
    redis.call('ZREM', x, id)
  end
  local limit = tonumber(ARGV[4 + 2*i])
  local spent = tonumber(redis.call('HGET', h, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', h, 'reserved') or '0')
  free[i] = math.max(0, limit - spent - reserved)
  own[i] = 0
  if lease ~= '' then own[i] = tonumber(redis.call('HGET', h, 'r:' .. lease) or '0') end
  local available = free[i] + own[i]
  if available < minimum then
    return {0, i - 1, available}
  end
  if available < grant then grant = available end
end
local remaining = {1, grant}
local taken = {}
for i = 1, n do
  local h, x = KEYS[3*i-2], KEYS[3*i-1]
  local from_lease = math.max(0, grant - free[i])
  taken[i] = from_lease
  if from_lease > 0 then
    redis.call('HINCRBY', h, 'r:' .. lease, -from_lease)
    redis.call('HINCRBY', h, 'reserved', -from_lease)
  end
  if grant > 0 then
    redis.call('HINCRBY', h, 'reserved', grant)
    redis.call('HSET', h, 'r:' .. id, grant)
    redis.call('ZADD', x, now + ttl, id)
  end
  local at = tonumber(ARGV[5 + 2*i])
  redis.call('EXPIREAT', h, at)
  redis.call('EXPIREAT', x, at)
  redis.call('EXPIREAT', KEYS[3*i], at)
  remaining[i + 2] = math.max(0, free[i] - grant)
end
for i = 1, n do remaining[n + 2 + i] = taken[i] end
return remaining
""".replace("{gone_ms}", str(GONE_KEPT_MS))

# KEYS: as RESERVE. ARGV: id, cost, mode ('settle': once per id; 'charge': spend no
# reservation of its own covers, taken out of the lease id given as ARGV[4] if it holds
# any), then per charge its expire-at (a charge may be the first to write the window).
SETTLE_LUA = """
local id, cost, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local n = #KEYS / 3
for i = 1, n do
  local h, x, g = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  if mode == 'charge' then
    local held = tonumber(redis.call('HGET', h, 'r:' .. ARGV[4]) or '0')
    local covered = math.min(held, cost)
    if covered > 0 then
      redis.call('HINCRBY', h, 'r:' .. ARGV[4], -covered)
      redis.call('HINCRBY', h, 'reserved', -covered)
    end
    redis.call('HINCRBY', h, 'spent', cost)
    local at = tonumber(ARGV[4 + i])
    if at then redis.call('EXPIREAT', h, at) end
  else
    local amount = redis.call('HGET', h, 'r:' .. id)
    if amount then
      redis.call('HINCRBY', h, 'reserved', -tonumber(amount))
      redis.call('HDEL', h, 'r:' .. id)
      redis.call('ZREM', x, id)
      redis.call('HINCRBY', h, 'spent', cost)
    elseif redis.call('ZREM', g, id) == 1 then  -- expired, but the work was done
      redis.call('HINCRBY', h, 'spent', cost)
    end  -- else settled already: once per id
  end
end
return 1
"""


def redis_keys(charges: tuple[Charge, ...]) -> list[str]:
    keys: list[str] = []
    for charge in charges:
        keys += [charge.key, charge.key + ":x", charge.key + ":g"]
    return keys


def settle_args(
    charges: tuple[Charge, ...], rid: str, cost: int, mode: str = "settle", lease: str = ""
) -> list[str | int]:
    return [rid, cost, mode, lease, *(charge.expire_at for charge in charges)]


def reserve_args(
    charges: tuple[Charge, ...], rid: str, want: int, minimum: int, ttl: float, lease: str
) -> list[str | int]:
    args: list[str | int] = [rid, max(1, int(ttl * 1000)), want, minimum, lease]
    for charge in charges:
        args += [charge.limit, charge.expire_at]
    return args


def integers(reply: object, what: str) -> list[int]:
    """A reply that must be an array of integers; ValueError for anything else."""
    if not isinstance(reply, list) or not all(isinstance(v, int) for v in reply):
        raise ValueError(f"unexpected {what} reply from redis: {reply!r:.200}")
    return reply


def parse_reserve(reply: object, count: int) -> Grant | Refusal:
    values = integers(reply, "reserve")
    refused = len(values) == 3 and values[0] == 0 and 0 <= values[1] < count
    if not refused and (len(values) != 2 + 2 * count or values[0] != 1):
        raise ValueError(f"unexpected reserve reply from redis: {values!r:.200}")
    if refused:
        return Refusal(values[1], values[2])
    from_lease = tuple(values[2 + count : 2 + 2 * count])
    if not any(from_lease):
        from_lease = ()
    return Grant(values[1], tuple(values[2 : 2 + count]), from_lease)


@dataclass(slots=True)
class _Account:
    spent: int = 0
    reserved: int = 0
    held: dict[str, int] = field(default_factory=dict)  # id -> amount
    expiries: OrderedDict[str, float] = field(default_factory=OrderedDict)  # id -> expiry
    gone: OrderedDict[str, float] = field(default_factory=OrderedDict)  # expired, settleable
    limit: int | None = None  # overrides the charge's limit (a lease spent locally)


class LocalLedger:
    """The same accounting in one process; ``clock`` in seconds (monotonic is fine)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.accounts: dict[str, _Account] = {}

    def account(self, key: str) -> _Account:
        account = self.accounts.get(key)
        if account is None:
            account = self.accounts[key] = _Account()
        return account

    def _reap(self, account: _Account, now: float) -> None:
        expiries = account.expiries
        while expiries:
            rid, expires = next(iter(expiries.items()))
            if expires > now:
                break
            del expiries[rid]
            account.reserved -= account.held.pop(rid, 0)
            account.gone[rid] = now
        while account.gone:
            rid, when = next(iter(account.gone.items()))
            if when > now - GONE_KEPT_MS / 1000:
                break
            del account.gone[rid]

    async def reserve(
        self,
        charges: tuple[Charge, ...],
        rid: str,
        want: int,
        minimum: int,
        ttl: float,
        lease: str = "",
    ) -> Grant | Refusal:
        return self.reserve_now(charges, rid, want, minimum, ttl)

    def reserve_now(
        self, charges: tuple[Charge, ...], rid: str, want: int, minimum: int, ttl: float
    ) -> Grant | Refusal:
        now = self._clock()
        grant = want
        free: list[int] = []
        for index, charge in enumerate(charges):
            account = self.account(charge.key)
            self._reap(account, now)
            old = account.held.pop(rid, 0)
            if old:
                account.reserved -= old
                account.expiries.pop(rid, None)
            limit = charge.limit if account.limit is None else account.limit
            available = max(0, limit - account.spent - account.reserved)
            if available < minimum:
                return Refusal(index, available)
            free.append(available)
            grant = min(grant, available)
        for charge in charges:
            account = self.account(charge.key)
            if grant > 0:
                account.reserved += grant
                account.held[rid] = grant
                account.expiries[rid] = now + ttl
        return Grant(grant, tuple(f - grant for f in free))

    async def settle(self, charges: tuple[Charge, ...], rid: str, cost: int) -> None:
        self.settle_now(charges, rid, cost)

    def settle_now(self, charges: tuple[Charge, ...], rid: str, cost: int) -> bool:
        """Replace ``rid``'s reservation with ``cost``; False if it was settled already."""
        settled = False
        for charge in charges:
            account = self.account(charge.key)
            amount = account.held.pop(rid, None)
            if amount is not None:
                account.reserved -= amount
                account.expiries.pop(rid, None)
                account.spent += cost
                settled = True
            elif account.gone.pop(rid, None) is not None:
                account.spent += cost
                settled = True
        return settled

    def usage(self, key: str) -> tuple[int, int, int]:
        """(spent, reserved, outstanding reservations) of one window."""
        account = self.accounts.get(key)
        if account is None:
            return 0, 0, 0
        return account.spent, account.reserved, len(account.held)
