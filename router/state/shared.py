"""The one door to state shared by the route's routers: budgets, rate limits, cache.

No other module talks to Redis. Every call here has Redis's short timeout
and goes through the client's circuit breaker; when Redis cannot answer,
the same decision is made from this router's own state instead, so traffic
never waits on Redis or stops with it:

* budgets spend from a *lease*: a small reservation (``redis.leasePercent``
  of each budget) every router takes in advance and renews. A budget can be
  overspent during an outage by at most the routers' leases; what was spent
  from them is charged to Redis when it is back.
* rate limits fall back to this router's share of each limit (the limit
  divided by the routers last seen alive);
* the cache fails open: a miss, and nothing is stored in Redis.

Without ``spec.redis`` the same accounting runs in each router alone: every
budget and limit is enforced per pod (a route with three pods may spend
three times a budget), and the cache is each pod's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelroute.router.cache import Entry, MemoryCache
from modelroute.router.credentials import read_secret_text
from modelroute.router.metrics import Metrics
from modelroute.router.state.ledger import (
    RESERVE_LUA,
    SETTLE_LUA,
    Charge,
    Grant,
    LocalLedger,
    Refusal,
    parse_reserve,
    redis_keys,
    reserve_args,
    settle_args,
    to_nano,
)
from modelroute.router.state.limiter import (
    CORRECT_LUA,
    TAKE_LUA,
    Allowed,
    Limited,
    LocalLimiter,
    Take,
    parse_take,
)
from modelroute.router.state.redis import RedisClient, RedisError, RedisUnavailable, Script
from modelroute.router.state.windows import window_bounds
from modelroute.spec.model import Budget, Cache, Redis

log = logging.getLogger("modelroute.state")

HEARTBEAT = 5.0  # seconds between a router's heartbeats (and budget gauge refreshes)
ALIVE = 15.0  # a router not heard from for this long no longer counts in the shares
LEASE_TTL = 60.0  # a lease not renewed for this long goes back to the budget
LEASE_EVERY = 15.0
_FAILED = (RedisUnavailable, RedisError, ValueError)
_MAX_PENDING = 100_000  # reservations waiting to be settled in Redis; beyond, merged charges
_MAX_CACHE_WRITES = 64  # cache writes to Redis in flight at once; beyond, skipped


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a decision was made, so its settlement goes to the same place."""

    source: str  # "redis", "lease" (Redis unreachable) or "local" (no Redis)


REDIS, LEASE, LOCAL = Placed("redis"), Placed("lease"), Placed("local")


def default_prefix(namespace: str | None, name: str) -> str:
    return f"modelroute:{namespace or 'default'}/{name}:"


class SharedState:
    """Budgets, limits and the cache for one route, with or without Redis."""

    def __init__(
        self,
        settings: Redis | None,
        prefix: str,
        secrets_dir: Path,
        metrics: Metrics,
        budgets: Callable[[], tuple[Budget, ...]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.prefix = prefix
        self.metrics = metrics
        self.pod = f"{os.uname().nodename}-{os.getpid()}-{os.urandom(3).hex()}"
        self.lease_id = f"lease:{self.pod}"
        self._budgets = budgets
        self.clock = self._clock = clock
        self.local = LocalLedger(clock)  # no Redis: the whole budget, per pod
        self.leases = LocalLedger(clock)  # Redis unreachable: limits are the leases
        self.limiter = LocalLimiter(clock)
        self.pods = 1
        self.memory: MemoryCache | None = None
        # Spend Redis has not been told of: (charges, reservation id or "", lease id or "")
        # -> nano-USD (see _pend).
        self.pending: dict[tuple[tuple[Charge, ...], str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.redis: RedisClient | None = None
        self.last_error = ""
        self.budget_view: dict[str, dict[str, float]] = {}  # as last seen, for /status
        self.holds = 0  # requests admitted through this state, not released yet
        self._closing = False
        self._closer: asyncio.Task[None] | None = None
        metrics.redis_up.set(0)
        if settings is not None:
            password: Callable[[], str] | None = None
            ref = settings.password_secret_ref
            if ref is not None:
                read_secret_text(ref, secrets_dir)  # missing: fail now, not at each connect

                def password() -> str:  # read at every connect: the Secret may be rotated
                    return read_secret_text(ref, secrets_dir).strip()

            ca_file = None
            if settings.tls is not None and settings.tls.ca_secret_ref is not None:
                ca = settings.tls.ca_secret_ref
                ca_file = str(secrets_dir / ca.name / ca.key)
            self.redis = RedisClient(
                settings.url,
                username=settings.username,
                password=password,
                timeout=settings.timeout,
                connect_timeout=settings.connect_timeout,
                ca_file=ca_file,
                server_name=settings.tls.server_name if settings.tls is not None else None,
                on_latency=metrics.redis_duration.observe,
                on_error=self._on_error,
                on_state=self._on_state,
            )
            self._reserve = Script(self.redis, RESERVE_LUA)
            self._settle = Script(self.redis, SETTLE_LUA)
            self._take = Script(self.redis, TAKE_LUA)
            self._correct = Script(self.redis, CORRECT_LUA)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self.redis is not None and self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._maintain())

    async def close(self) -> None:
        """Stop the heartbeat and the leases. Redis stays open for the requests admitted
        through this state until the last is released (a reload replaced the state under
        them: their reservations are settled, not left to expire)."""
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._closing = True
        if self.redis is not None and not self.holds:
            await self.redis.close()

    def released(self) -> None:
        """A request admitted through this state was released (see :meth:`close`)."""
        self.holds -= 1
        if self._closing and not self.holds and self.redis is not None:
            self._closer = asyncio.get_running_loop().create_task(self.redis.close())

    @property
    def shared(self) -> bool:
        """Whether decisions are being made in Redis right now."""
        return self.redis is not None and self.redis.available

    def _on_error(self, kind: str) -> None:
        self.metrics.redis_errors.labels(kind).inc()
        self.last_error = kind

    def _on_state(self, available: bool) -> None:
        self.metrics.redis_up.set(1 if available else 0)
        if available:
            log.warning("redis is reachable again: budgets, limits and cache are shared")
            self._spawn(self._flush())
        else:
            log.warning(
                "redis is unavailable (%s): budgets spend from this router's lease, rate "
                "limits use its share (1/%d), the cache is this router's memory",
                self.last_error or "error",
                self.pods,
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _maintain(self) -> None:
        """Heartbeat (routers alive, for the shares), leases, budget gauges."""
        last_lease = -LEASE_EVERY
        while True:
            try:
                await self._heartbeat()
                if self.pending:
                    await self._flush()  # before renewing: the lease pays for it first
                now = time.monotonic()
                if now - last_lease >= LEASE_EVERY and not self.pending:
                    await self.renew_leases()
                    last_lease = now
            except _FAILED:
                pass  # counted by the client; the breaker decides when to try again
            await asyncio.sleep(HEARTBEAT)

    async def _heartbeat(self) -> None:
        assert self.redis is not None
        key = self.prefix + "pods"
        now_ms = int(self._clock() * 1000)
        await self.redis.call("ZADD", key, now_ms, self.pod)
        # Up from the first answer on (the breaker reports changes only, and it starts
        # closed: without this a router that never lost Redis would read 0).
        self.metrics.redis_up.set(1)
        await self.redis.call("ZREMRANGEBYSCORE", key, "-inf", now_ms - int(ALIVE * 1000))
        await self.redis.call("PEXPIRE", key, int(ALIVE * 4000))
        count = await self.redis.call("ZCARD", key)
        self.pods = max(1, int(count)) if isinstance(count, int) else 1
        self.limiter.share = self.pods
        for budget in self._budgets():
            charge = self.charge(budget)
            reply = await self.redis.call("HMGET", charge.key, "spent", "reserved")
            if isinstance(reply, list) and len(reply) == 2:
                spent, reserved = (int(v) if isinstance(v, bytes | int) else 0 for v in reply)
                self._show_budget(charge, spent, reserved)

    # --- budgets -----------------------------------------------------------------------

    def _show_budget(self, charge: Charge, spent: int, reserved: int) -> None:
        remaining = max(0, charge.limit - spent - reserved)
        self.metrics.budget_spent.labels(charge.budget).set(spent / 1e9)
        self.metrics.budget_remaining.labels(charge.budget).set(remaining / 1e9)
        self.budget_view[charge.budget] = {
            "limitUSD": charge.limit / 1e9,
            "spentUSD": round(spent / 1e9, 9),
            "reservedUSD": round(reserved / 1e9, 9),
            "remainingUSD": round(remaining / 1e9, 9),
        }

    def show_local_budgets(self) -> None:
        """Without Redis: the budgets as this router alone has spent them."""
        for budget in self._budgets():
            charge = self.charge(budget)
            spent, reserved, _ = self.local.usage(charge.key)
            self._show_budget(charge, spent, reserved)

    def charge(self, budget: Budget) -> Charge:
        """The budget's current window: a budget's scope (route, model or client) is
        fixed by its spec, so one key per window counts it."""
        start, end = window_bounds(budget.window, self._clock())
        key = f"{self.prefix}b:{budget.name}:{start}"
        return Charge(budget.name, key, to_nano(budget.limit_usd), end + 86400)

    async def renew_leases(self) -> None:
        """Take (or renew) this router's lease on every budget's current window."""
        if self.redis is None or self.settings is None:
            return
        percent = self.settings.lease_percent
        for budget in self._budgets():
            charge = self.charge(budget)
            want = int(charge.limit * percent / 100)
            grant = parse_reserve(
                await self._reserve(
                    keys=redis_keys((charge,)),
                    args=reserve_args((charge,), self.lease_id, want, 0, LEASE_TTL, ""),
                ),
                1,
            )
            lease = self.leases.account(charge.key)
            lease.limit = grant.amount if isinstance(grant, Grant) else 0
            lease.spent = 0  # what was spent from the old lease went to Redis (pending)

    def _lease_limits(self, charges: tuple[Charge, ...]) -> None:
        """A budget this router never took a lease on (Redis down since it started):
        an implicit lease of the same size, so traffic goes on within the bound."""
        percent = self.settings.lease_percent if self.settings is not None else 0
        for charge in charges:
            account = self.leases.account(charge.key)
            if account.limit is None:
                account.limit = int(charge.limit * percent / 100)

    async def reserve(
        self, charges: tuple[Charge, ...], rid: str, want: int, minimum: int, ttl: float
    ) -> tuple[Grant | Refusal, Placed]:
        if self.redis is None:
            return self.local.reserve_now(charges, rid, want, minimum, ttl), LOCAL
        if self.redis.available:
            try:
                try:
                    reply = await self._reserve(
                        keys=redis_keys(charges),
                        args=reserve_args(charges, rid, want, minimum, ttl, self.lease_id),
                    )
                except asyncio.CancelledError:
                    # The client went away with the script sent: it will still run. Give
                    # back what it reserves as soon as it has (Redis runs a connection's
                    # commands in order: this release comes after it), not at expiry.
                    self._spawn(self._release(charges, rid))
                    raise
                result = parse_reserve(reply, len(charges))
                if isinstance(result, Grant) and result.from_lease:
                    # This router's lease shrank in Redis: so does what it may spend
                    # from it while Redis is unreachable.
                    for charge, taken in zip(charges, result.from_lease, strict=True):
                        lease = self.leases.account(charge.key)
                        if lease.limit is not None:
                            lease.limit = max(0, lease.limit - taken)
                return result, REDIS
            except _FAILED:
                # The script may have run all the same (a reply too late, or one this
                # router cannot read): what it reserved is given back when Redis answers.
                self._pend(charges, 0, rid=rid)
        self._lease_limits(charges)
        return self.leases.reserve_now(charges, rid, want, minimum, ttl), LEASE

    async def settle(
        self, charges: tuple[Charge, ...], rid: str, cost: int, placed: Placed
    ) -> None:
        if placed is LOCAL:
            self.local.settle_now(charges, rid, cost)
            for charge in charges:
                spent, reserved, _ = self.local.usage(charge.key)
                self._show_budget(charge, spent, reserved)
            return
        if placed is REDIS:
            try:
                await self._settle(keys=redis_keys(charges), args=settle_args(charges, rid, cost))
            except _FAILED:
                # Settled when Redis is back, by its id: once, even if this call ran.
                self._pend(charges, cost, rid=rid)
            return
        self.leases.settle_now(charges, rid, cost)
        self._pend(charges, cost, lease=self.lease_id)

    async def _release(self, charges: tuple[Charge, ...], rid: str) -> None:
        with contextlib.suppress(*_FAILED):
            await self._settle(keys=redis_keys(charges), args=settle_args(charges, rid, 0))

    async def charge_spent(self, charges: tuple[Charge, ...], cost: int) -> None:
        """Spend that no reservation covered (a request degraded past a budget)."""
        if not charges or cost <= 0:
            return
        if self.redis is None:
            for charge in charges:
                self.local.account(charge.key).spent += cost
            return
        try:
            await self._settle(
                keys=redis_keys(charges), args=settle_args(charges, "", cost, "charge")
            )
        except _FAILED:
            self._pend(charges, cost)

    def _pend(self, charges: tuple[Charge, ...], cost: int, rid: str = "", lease: str = "") -> None:
        """Keep spend for Redis: a reservation of its own to settle (``rid``: once, however
        often it is sent), else a charge, merged with the others of the same budgets."""
        if rid and len(self.pending) >= _MAX_PENDING:
            rid = ""  # too many to settle one by one: charged (their reservations expire)
        key = (charges, rid, lease)
        self.pending[key] = self.pending.get(key, 0) + cost

    async def _flush(self) -> None:
        """Charge Redis with what was spent while it was unreachable.

        Both the breaker's closing and the heartbeat flush: each takes an entry out
        before sending it, so no entry is sent twice, and puts it back if the call failed.
        """
        while self.pending and self.shared:
            key = next(iter(self.pending))
            cost = self.pending.pop(key)
            charges, rid, lease = key
            mode = "settle" if rid else "charge"
            try:
                await self._settle(
                    keys=redis_keys(charges), args=settle_args(charges, rid, cost, mode, lease)
                )
            except RedisError as error:  # refused as sent: it would be refused again
                log.error("a budget charge was refused by redis, and dropped: %s", error)
            except _FAILED:
                self._pend(charges, cost, rid, lease)
                return

    # --- rate limits -------------------------------------------------------------------

    async def take(self, takes: tuple[Take, ...]) -> tuple[Allowed | Limited, Placed]:
        if self.redis is None:
            return self.limiter.take_now(takes), LOCAL
        if self.redis.available:
            try:
                reply = await self._take(
                    keys=[t.key for t in takes],
                    args=[v for t in takes for v in (t.limit, t.amount)],
                )
                return parse_take(takes, reply), REDIS
            except _FAILED:
                pass
        return self.limiter.take_now(takes), LEASE

    async def correct(self, take: Take, minute: int, delta: int, placed: Placed) -> None:
        if delta == 0:
            return
        if placed is REDIS:
            with contextlib.suppress(*_FAILED):
                await self._correct(keys=[f"{take.key}:{minute}"], args=[delta])
            return
        await self.limiter.correct(take, minute, delta)

    # --- the cache ---------------------------------------------------------------------

    def cache_settings(self, settings: Cache) -> MemoryCache:
        if self.memory is None or self.memory.settings != settings:
            self.memory = MemoryCache(settings)
        return self.memory

    async def cache_get(self, key: bytes) -> tuple[Entry | None, str]:
        assert self.memory is not None
        now = self._clock()
        entry = self.memory.get(key, now)
        if entry is not None:
            return entry, "memory"
        if not self.shared:
            return None, ""
        assert self.redis is not None
        try:
            blob = await self.redis.call("GET", self.prefix + "c:" + key.hex())
        except _FAILED:
            return None, ""
        if not isinstance(blob, bytes):
            return None, ""
        entry = Entry.load(blob)
        if entry is None or entry.expires <= now:
            return None, ""
        self.memory.put(key, entry)
        return entry, "redis"

    def cache_put(self, key: bytes, entry: Entry) -> None:
        assert self.memory is not None
        self.memory.put(key, entry)
        self.metrics.cache_bytes.set(self.memory.bytes)
        if self.shared and len(self._tasks) < _MAX_CACHE_WRITES:
            ttl_ms = int((entry.expires - self._clock()) * 1000)
            if ttl_ms > 0:
                self._spawn(self._cache_write(key, entry.dump(), ttl_ms))

    async def _cache_write(self, key: bytes, blob: bytes, ttl_ms: int) -> None:
        assert self.redis is not None
        with contextlib.suppress(*_FAILED):
            await self.redis.call("SET", self.prefix + "c:" + key.hex(), blob, "PX", ttl_ms)

    # --- status ------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "redis": "none" if self.redis is None else ("up" if self.shared else "unavailable"),
            "routers": self.pods,
            "pendingCharges": len(self.pending),
        }
        if self.redis is None:
            self.show_local_budgets()
        if self.budget_view:
            doc["budgets"] = self.budget_view
        if self.memory is not None:
            doc["cache"] = {"entries": len(self.memory), "bytes": self.memory.bytes}
        return doc
