"""Shared budgets under the load users bring: real router processes, one real Redis,
shipped defaults (but for the budget itself), counting at the client, at Redis and at
the upstream.

* 1,000 concurrent requests over three routers: the budget is never overspent;
* a router killed with SIGKILL mid-request: its reservations come back by expiry;
* Redis killed under 20 clients: no request fails, and what was spent while it was
  gone is charged to it when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from modelroute.router.sim import SimServer
from tests.router.budgeted import redis_hash
from tests.router.conftest import SimFactory, metric_value, route_doc
from tests.router.redis_server import RedisServer, fresh_redis_server
from tests.router.scripted import RouterProcess, router_process

__all__ = ["fresh_redis_server"]
NANO = 1e9


def shared_route(sim: SimServer, redis: RedisServer, **spec: Any) -> dict[str, Any]:
    doc = route_doc({"deepseek": [("us-east-1", sim)]}, regions=("us-east-1",), **spec)
    doc["spec"]["redis"] = {"url": redis.url, "keyPrefix": "scenario:"}
    return doc


@contextlib.asynccontextmanager
async def routers(
    doc: dict[str, Any], tmp_path: Path, count: int
) -> AsyncIterator[list[RouterProcess]]:
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for i in range(count):
            home = tmp_path / f"router-{i}"
            home.mkdir()
            started.append(await stack.enter_async_context(router_process(doc, home)))
        yield started


async def budget_state(redis: RedisServer, name: str) -> dict[str, int]:
    """The budget's current-day window, read from Redis over a plain socket."""
    day = int(time.time()) // 86400 * 86400
    return await redis_hash(redis.port, f"scenario:b:{name}:{day}")


async def test_a_thousand_concurrent_requests_over_three_routers_never_overspend(
    make_sim: SimFactory, fresh_redis_server: RedisServer, tmp_path: Path
) -> None:
    sim = await make_sim(tokens=16)
    limit = 0.02  # about 300 answers of ~$0.00006 each, for 1,000 asking at once
    doc = shared_route(sim, fresh_redis_server, budgets=[{"name": "daily", "limitUSD": limit}])
    async with routers(doc, tmp_path, 3) as three:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def one(i: int) -> tuple[int, float]:
                body = {
                    "model": "chat-fast",
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": f"Question number {i}, please."}],
                }
                url = f"{three[i % 3].base}/v1/chat/completions"
                async with http.post(url, json=body) as resp:
                    answer = orjson.loads(await resp.read())
                    if resp.status == 200:
                        return 200, float(resp.headers["x-modelroute-cost-usd"])
                    assert resp.status == 429, answer
                    assert answer["error"]["code"] == "budget_exceeded"
                    return 429, 0.0

            results = await asyncio.gather(*(one(i) for i in range(1000)))
            redis_errors = 0.0
            for router in three:
                async with http.get(f"{router.base}/metrics") as resp:
                    text = await resp.text()
                redis_errors += sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("modelroute_redis_errors_total{")
                )
    answered = [cost for status, cost in results if status == 200]
    refused = sum(1 for status, _ in results if status == 429)
    spent = sum(answered)
    assert len(answered) + refused == 1000
    # Refused requests never reached the upstream (its other calls are health probes).
    assert sim.stats.by_path.get("/v1/chat/completions", 0) == len(answered)
    assert len(answered) >= 200  # the budget was used, not refused wholesale
    overshoot = spent - limit
    print(
        f"answered {len(answered)}, refused {refused}, spent ${spent:.8f} of ${limit}, "
        f"overshoot ${max(0.0, overshoot):.8f}, failed Redis calls {redis_errors:g}"
    )
    assert overshoot <= 1e-9
    state = await budget_state(fresh_redis_server, "daily")
    assert abs(state["spent"] / NANO - spent) < 1e-6  # Redis counted what clients were billed
    held = {k: v for k, v in state.items() if k.startswith("r:") and not k.startswith("r:lease:")}
    assert held == {}  # every request's reservation was settled


async def test_a_killed_routers_reservations_come_back_by_expiry(
    make_sim: SimFactory, fresh_redis_server: RedisServer, tmp_path: Path
) -> None:
    slow = await make_sim(latency_ms=5000)
    doc = shared_route(
        slow,
        fresh_redis_server,
        budgets=[{"name": "daily", "limitUSD": 1}],
        resilience={
            "retries": {"attempts": 0},
            "timeouts": {"firstToken": "1s", "total": "1s"},
            "healthCheck": {"enabled": False},
        },
    )
    async with routers(doc, tmp_path, 2) as (doomed, survivor), aiohttp.ClientSession() as http:
        body = {
            "model": "chat-fast",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
        }
        pending = [
            asyncio.create_task(http.post(f"{doomed.base}/v1/chat/completions", json=body))
            for _ in range(10)
        ]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = await budget_state(fresh_redis_server, "daily")
            if sum(1 for k in state if k.startswith("r:mr-")) == 10:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the reservations were not made: {state}")
        doomed.proc.send_signal(signal.SIGKILL)
        await doomed.proc.wait()
        for task in pending:
            with contextlib.suppress(aiohttp.ClientError):
                (await task).close()
        held = state["reserved"]
        assert held > 0
        # A reservation lives total x (1 + attempts) + 10 s = 11 s; then any reservation
        # (here the survivor's next request) reaps it.
        await asyncio.sleep(11.5)
        slow.behaviour.latency_ms = 0
        async with http.post(f"{survivor.base}/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
        # (its own reservation is settled just after the answer is sent)
        for _ in range(100):
            state = await budget_state(fresh_redis_server, "daily")
            if not any(k.startswith("r:mr-") for k in state):
                break
            await asyncio.sleep(0.02)
        assert not any(k.startswith("r:mr-") for k in state), state
        leases = sum(v for k, v in state.items() if k.startswith("r:lease:"))
        assert state["reserved"] == leases  # only the routers' leases are held


async def test_redis_killed_under_load_fails_no_request_and_is_charged_when_back(
    make_sim: SimFactory, fresh_redis_server: RedisServer, tmp_path: Path
) -> None:
    redis = fresh_redis_server
    sim = await make_sim(tokens=8)
    doc = shared_route(
        sim,
        redis,
        budgets=[{"name": "daily", "limitUSD": 100}],
        rateLimits=[{"name": "rpm", "requestsPerMinute": 1_000_000}],
        cache={"enabled": True},
    )
    async with routers(doc, tmp_path, 2) as two, aiohttp.ClientSession() as http:
        statuses: list[int] = []
        outage_cost = 0.0
        outage = asyncio.Event()
        stop = asyncio.Event()

        async def client(n: int) -> None:
            nonlocal outage_cost
            i = 0
            while not stop.is_set():
                i += 1
                body = {
                    "model": "chat-fast",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"client {n} turn {i}"}],
                }
                async with http.post(f"{two[n % 2].base}/v1/chat/completions", json=body) as resp:
                    await resp.read()
                    statuses.append(resp.status)
                    if outage.is_set() and resp.status == 200:
                        outage_cost += float(resp.headers["x-modelroute-cost-usd"])

        clients = [asyncio.create_task(client(n)) for n in range(20)]
        await asyncio.sleep(1.0)
        redis.stop()
        outage.set()
        await asyncio.sleep(2.0)
        outage.clear()
        stop.set()
        await asyncio.gather(*clients)
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        during = outage_cost
        metrics = ""
        async with http.get(f"{two[0].base}/metrics") as resp:
            metrics = await resp.text()
        assert metric_value(metrics, "modelroute_redis_up") == 0.0
        redis.start()  # empty: no persistence
        deadline = time.monotonic() + 20
        state: dict[str, int] = {}
        while time.monotonic() < deadline:
            state = await budget_state(redis, "daily")
            if state.get("spent", 0) / NANO >= during - 1e-6:
                break
            await asyncio.sleep(0.2)
        # What both routers spent from their leases while Redis was gone reached it.
        assert state.get("spent", 0) / NANO >= during - 1e-6, (state, during)
        assert state.get("spent", 0) / NANO <= during + 0.01
