"""Budgets and rate limits: the Lua in a real Redis and the local twin, one behaviour.

Every rule is checked against both ledgers (and both limiters): the router
uses Redis while it answers and the local twin without it or during an
outage, so a difference between them would be a difference users see when
Redis comes and goes. A hypothesis property drives both with the same random
operations and compares what they decide.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    to_nano,
)
from modelroute.router.state.limiter import (
    TAKE_LUA,
    Allowed,
    Limited,
    LocalLimiter,
    Take,
    parse_take,
    wait_ms,
)
from modelroute.router.state.redis import RedisClient, Script
from tests.router.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]
_names = itertools.count()


class RedisLedger:
    """The Lua scripts behind the ledger interface, for comparison with LocalLedger."""

    def __init__(self, client: RedisClient) -> None:
        self._reserve = Script(client, RESERVE_LUA)
        self._settle = Script(client, SETTLE_LUA)

    async def reserve(
        self,
        charges: tuple[Charge, ...],
        rid: str,
        want: int,
        minimum: int,
        ttl: float,
        lease: str = "",
    ) -> Grant | Refusal:
        reply = await self._reserve(
            keys=redis_keys(charges), args=reserve_args(charges, rid, want, minimum, ttl, lease)
        )
        return parse_reserve(reply, len(charges))

    async def settle(self, charges: tuple[Charge, ...], rid: str, cost: int) -> None:
        await self._settle(keys=redis_keys(charges), args=[rid, cost, "settle", ""])


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[RedisClient]:
    redis = RedisClient(redis_server.url, timeout=2.0)
    yield redis
    await redis.close()


def _charges(*limits: int) -> tuple[Charge, ...]:
    run = next(_names)
    return tuple(
        Charge(f"b{i}", f"t{run}:b{i}", limit, 4_000_000_000) for i, limit in enumerate(limits)
    )


@pytest.fixture(params=["local", "redis"])
def ledger(request: pytest.FixtureRequest, client: RedisClient) -> Any:
    return LocalLedger() if request.param == "local" else RedisLedger(client)


async def _state(ledger: Any, client: RedisClient, charge: Charge) -> tuple[int, int]:
    """(spent, reserved) of one budget window."""
    if isinstance(ledger, LocalLedger):
        spent, reserved, _ = ledger.usage(charge.key)
        return spent, reserved
    values = await client.call("HMGET", charge.key, "spent", "reserved")
    assert isinstance(values, list)
    return tuple(int(v) if isinstance(v, bytes) else 0 for v in values)  # type: ignore[return-value]


async def test_reserve_clamp_refuse_and_settle_once(ledger: Any, client: RedisClient) -> None:
    (charge,) = charges = _charges(1000)
    assert await ledger.reserve(charges, "a", 600, 600, 60) == Grant(600, (400,))
    # Less is left than the worst case: granted what is left, if at least the minimum.
    assert await ledger.reserve(charges, "b", 600, 100, 60) == Grant(400, (0,))
    assert await ledger.reserve(charges, "c", 600, 1, 60) == Refusal(0, 0)
    await ledger.settle(charges, "a", 250)  # cost less than reserved: the rest is free again
    assert await _state(ledger, client, charge) == (250, 400)
    await ledger.settle(charges, "a", 250)  # once per request id
    assert await _state(ledger, client, charge) == (250, 400)
    assert await ledger.reserve(charges, "c", 600, 1, 60) == Grant(350, (0,))


async def test_all_budgets_or_none(ledger: Any, client: RedisClient) -> None:
    wide, _narrow = charges = _charges(10_000, 100)
    assert await ledger.reserve(charges, "a", 500, 500, 60) == Refusal(1, 100)
    assert await _state(ledger, client, wide) == (0, 0)  # nothing was held on the other
    grant = await ledger.reserve(charges, "a", 500, 50, 60)
    assert grant == Grant(100, (9_900, 0))
    assert await _state(ledger, client, wide) == (0, 100)


async def test_an_expired_reservation_frees_the_budget_and_still_settles_once(
    ledger: Any, client: RedisClient
) -> None:
    (charge,) = charges = _charges(1000)
    assert isinstance(await ledger.reserve(charges, "dead", 1000, 1000, 0.05), Grant)
    assert isinstance(await ledger.reserve(charges, "x", 10, 10, 60), Refusal)
    await asyncio.sleep(0.12)
    if isinstance(ledger, LocalLedger):  # the local clock is monotonic: wait for it too
        pass
    # The crashed request's hold is reaped by the next reservation.
    assert await ledger.reserve(charges, "x", 10, 10, 60) == Grant(10, (990,))
    # Its work was done after all: the late settlement counts, once.
    await ledger.settle(charges, "dead", 300)
    await ledger.settle(charges, "dead", 300)
    assert await _state(ledger, client, charge) == (300, 10)


async def test_a_lease_is_held_from_others_and_spendable_by_its_owner(
    client: RedisClient,
) -> None:
    ledger = RedisLedger(client)
    (charge,) = charges = _charges(1000)
    assert await ledger.reserve(charges, "lease:pod-a", 200, 0, 60) == Grant(200, (800,))
    assert await ledger.reserve(charges, "big", 800, 800, 60) == Grant(800, (0,))
    # Nothing is free for others; pod-a's own request may spend its lease.
    assert isinstance(await ledger.reserve(charges, "other", 50, 50, 60), Refusal)
    got = await ledger._reserve(
        keys=redis_keys(charges), args=reserve_args(charges, "mine", 50, 50, 60, "lease:pod-a")
    )
    assert parse_reserve(got, 1) == Grant(50, (0,), (50,))
    assert await _state(ledger, client, charge) == (0, 1000)  # the lease shrank by 50
    lease = await client.call("HGET", charge.key, "r:lease:pod-a")
    assert lease == b"150"
    # Renewing the lease replaces it instead of adding to it.
    await ledger.settle(charges, "big", 800)
    assert await ledger.reserve(charges, "lease:pod-a", 100, 0, 60) == Grant(100, (50,))
    assert await _state(ledger, client, charge) == (800, 150)


_ops = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "settle"]),
        st.integers(0, 7),  # request id
        st.integers(1, 400),  # worst case
        st.integers(0, 100),  # cost as a share of what was granted, percent
        st.booleans(),  # clamp allowed
    ),
    min_size=1,
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops, limits=st.lists(st.integers(1, 1500), min_size=1, max_size=3))
async def test_redis_and_local_ledgers_decide_alike_and_never_overspend(
    client: RedisClient, ops: list[tuple[str, int, int, int, bool]], limits: list[int]
) -> None:
    """Same operations, same answers; and with costs within their grants (the router
    caps max_tokens to what was reserved), nothing is ever spent past a limit."""
    local, shared = LocalLedger(), RedisLedger(client)
    run = next(_names)
    local_charges = tuple(
        Charge(f"b{i}", f"l{run}:{i}", lim, 4_000_000_000) for i, lim in enumerate(limits)
    )
    redis_charges = tuple(
        Charge(f"b{i}", f"r{run}:{i}", lim, 4_000_000_000) for i, lim in enumerate(limits)
    )
    granted: dict[int, int] = {}
    for op, rid, want, share, clamp in ops:
        if op == "reserve" and rid not in granted:
            minimum = 1 if clamp else want
            a = await local.reserve(local_charges, str(rid), want, minimum, 60)
            b = await shared.reserve(redis_charges, str(rid), want, minimum, 60)
            assert a == b
            if isinstance(a, Grant):
                granted[rid] = a.amount
        elif op == "settle" and rid in granted:
            cost = granted.pop(rid) * share // 100
            await local.settle(local_charges, str(rid), cost)
            await shared.settle(redis_charges, str(rid), cost)
    for lc, rc, limit in zip(local_charges, redis_charges, limits, strict=True):
        spent, reserved = await _state(local, client, lc)
        assert (spent, reserved) == await _state(shared, client, rc)
        assert spent + reserved <= limit


async def test_concurrent_reservations_never_pass_the_limit(client: RedisClient) -> None:
    """500 reservations at once through one pipelined connection: the script is atomic,
    so exactly as many pass as fit."""
    ledger = RedisLedger(client)
    (charge,) = charges = _charges(to_nano(1.0))
    want = to_nano(0.01)
    results = await asyncio.gather(
        *(ledger.reserve(charges, f"r{i}", want, want, 60) for i in range(500))
    )
    assert sum(isinstance(r, Grant) for r in results) == 100
    assert await _state(ledger, client, charge) == (0, to_nano(1.0))


# --- rate limits ---------------------------------------------------------------------------


class RedisLimiter:
    def __init__(self, client: RedisClient) -> None:
        self._take = Script(client, TAKE_LUA)

    async def take(self, takes: tuple[Take, ...]) -> Allowed | Limited:
        reply = await self._take(
            keys=[t.key for t in takes], args=[v for t in takes for v in (t.limit, t.amount)]
        )
        return parse_take(takes, reply)


@pytest.fixture(params=["local", "redis"])
def limiter(request: pytest.FixtureRequest, client: RedisClient) -> Any:
    return LocalLimiter() if request.param == "local" else RedisLimiter(client)


async def test_requests_per_minute_and_all_or_none(limiter: Any) -> None:
    run = next(_names)
    rpm = Take(f"q{run}:r", 5, 1, "requests", "rpm")
    tpm = Take(f"q{run}:t", 1000, 300, "tokens", "tpm")
    answers = [await limiter.take((rpm, tpm)) for _ in range(4)]
    assert [type(a) for a in answers] == [Allowed, Allowed, Allowed, Limited]
    assert answers[3].index == 1  # the tokens ran out first
    assert 0 < answers[3].retry_after_ms <= 120_000
    assert answers[2].remaining == (2, 100)
    # The refused request took nothing: the requests limit still has room for two.
    small = Take(f"q{run}:t", 1000, 100, "tokens", "tpm")
    assert isinstance(await limiter.take((rpm, small)), Allowed)
    assert isinstance(
        await limiter.take((rpm, Take(f"q{run}:t", 1000, 0, "tokens", "tpm"))), Allowed
    )
    refused = await limiter.take((rpm,))
    assert isinstance(refused, Limited) and refused.index == 0


@given(
    limit=st.integers(1, 1000),
    prev=st.integers(0, 1000),
    curr=st.integers(0, 1000),
    amount=st.integers(1, 200),
    elapsed=st.integers(0, 59_999),
)
def test_the_wait_is_long_enough(
    limit: int, prev: int, curr: int, amount: int, elapsed: int
) -> None:
    """After the wait the request fits (unless it never can), and not before the window
    could have moved at all."""
    wait = wait_ms(limit, prev, curr, amount, elapsed)
    assert wait >= 1
    if amount > limit:
        return
    later = elapsed + wait
    if later < 60_000:
        used = prev * (1 - later / 60_000) + curr
    elif later < 120_000:
        used = curr * (1 - (later - 60_000) / 60_000)
    else:
        used = 0
    assert used + amount <= limit + 1e-6


def test_while_redis_is_unreachable_each_router_takes_its_share() -> None:
    """Three routers seen alive: each allows a third of the limit on its own."""
    limiter = LocalLimiter(clock=lambda: 1_800_000_000.0)
    limiter.share = 3
    rpm = Take("share:r", 30, 1, "requests", "rpm")
    answers = [limiter.take_now((rpm,)) for _ in range(12)]
    assert sum(isinstance(a, Allowed) for a in answers) == 10
