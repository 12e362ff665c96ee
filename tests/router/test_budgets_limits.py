"""Budgets, client rate limits and the shared cache through real routers on loopback,
with a real redis-server between them (and without one, per pod)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from modelroute.router.serve import RouterServer
from tests.router.budgeted import chat, doc_for, post
from tests.router.conftest import RouterFactory, SimFactory, metric_value, quiet_route, scrape
from tests.router.redis_server import RedisServer, fresh_redis_server, redis_server, start_redis

__all__ = ["fresh_redis_server", "redis_server"]

KEYS = {"alice": "sk-alice-0123456789", "bob": "sk-bob-9876543210"}


def with_clients(doc: dict[str, Any], secrets: Path) -> dict[str, Any]:
    for name, key in KEYS.items():
        (secrets / f"key-{name}").mkdir(parents=True, exist_ok=True)
        (secrets / f"key-{name}" / "key").write_text(key + "\n")
    doc["spec"]["auth"] = {
        "clients": [
            {"name": name, "keySecretRef": {"name": f"key-{name}", "key": "key"}} for name in KEYS
        ]
    }
    return doc


async def spend_until_refused(
    http: aiohttp.ClientSession, routers: list[RouterServer], body: dict[str, Any], most: int = 200
) -> tuple[float, int, tuple[int, dict[str, str], Any]]:
    """Requests round-robin until one is refused: (USD spent, answers, the refusal)."""
    spent = 0.0
    for i in range(most):
        status, headers, answer = await post(http, routers[i % len(routers)], body)
        if status != 200:
            return spent, i, (status, headers, answer)
        spent += float(headers["x-modelroute-cost-usd"])
    raise AssertionError("the budget never ran out")


async def test_a_spent_budget_answers_429_naming_it_until_the_window_resets(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
) -> None:
    sim = await make_sim(tokens=16)
    limit = 0.0012
    doc = doc_for(sim, redis_server, "spent", budgets=[{"name": "daily", "limitUSD": limit}])
    routers = [await make_router(doc), await make_router(doc)]
    spent, answers, (status, headers, answer) = await spend_until_refused(
        http, routers, chat(max_tokens=16)
    )
    assert answers >= 10 and spent <= limit + 1e-9  # (a sum of 8-decimal headers)
    assert status == 429
    assert answer["error"]["type"] == "insufficient_quota"
    assert answer["error"]["code"] == "budget_exceeded"
    assert "`daily`" in answer["error"]["message"]
    midnight = (int(time.time()) // 86400 + 1) * 86400
    assert abs(int(headers["retry-after"]) - (midnight - time.time())) < 5
    calls = sim.stats.requests
    assert (await post(http, routers[0], chat(max_tokens=16)))[0] == 429
    assert sim.stats.requests == calls  # refused before any upstream call
    metrics = await scrape(http, routers[0])
    assert (metric_value(metrics, "modelroute_budget_refusals_total", budget="daily") or 0) >= 1


async def test_less_left_than_the_worst_case_lowers_max_tokens(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
) -> None:
    sim = await make_sim(tokens=400)
    # Without Redis: the budget is this router's own. No max_tokens: the model's
    # allowance (4096 output tokens, $0.008) is the worst case, over the $0.0005 limit.
    doc = doc_for(sim, budgets=[{"name": "tiny", "limitUSD": 0.0005}])
    router = await make_router(doc)
    status, headers, answer = await post(http, router, chat())
    assert status == 200
    clamped = int(headers["x-modelroute-max-tokens-clamped"])
    assert 0 < clamped < 250
    assert answer["usage"]["completion_tokens"] <= clamped
    assert answer["choices"][0]["finish_reason"] == "length"
    assert float(headers["x-modelroute-cost-usd"]) <= 0.0005


async def test_a_budget_that_degrades_answers_from_the_cheaper_model(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
) -> None:
    big, small = await make_sim(tokens=16), await make_sim(tokens=16)
    doc = quiet_route(
        {"big": [("us-east-1", big)], "small": [("us-east-1", small)]},
        models={
            "chat-fast": [("big", "upstream-model")],
            "chat-cheap": [("small", "upstream-model")],
        },
        budgets=[
            {
                "name": "premium",
                "limitUSD": 0.0002,
                "model": "chat-fast",
                "onExceeded": "degrade",
                "degradeTo": "chat-cheap",
            }
        ],
    )
    router = await make_router(doc)
    answered_by = []
    for _ in range(12):
        status, headers, _ = await post(http, router, chat(max_tokens=16))
        assert status == 200
        answered_by.append(headers["x-modelroute-provider"])
        if headers["x-modelroute-provider"] == "small":
            assert headers["x-modelroute-degraded"] == "budget:premium"
    assert answered_by[0] == "big" and answered_by[-1] == "small"


async def test_named_clients_have_their_own_limits_and_labels(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    sim = await make_sim(tokens=4)
    doc = with_clients(
        doc_for(
            sim,
            redis_server,
            "clients",
            rateLimits=[{"name": "alice-rpm", "client": "alice", "requestsPerMinute": 3}],
        ),
        tmp_path / "secrets",
    )
    routers = [await make_router(doc), await make_router(doc)]
    statuses = []
    for i in range(6):  # spread over both routers: the limit holds across them
        status, headers, answer = await post(http, routers[i % 2], chat(), key=KEYS["alice"])
        statuses.append(status)
        if status == 200:
            assert headers["x-ratelimit-limit-requests"] == "3"
            assert int(headers["x-ratelimit-remaining-requests"]) == 2 - i
        else:
            assert answer["error"]["code"] == "rate_limit_exceeded"
            assert answer["error"]["type"] == "requests"
            assert 1 <= int(headers["retry-after"]) <= 120
            assert headers["x-ratelimit-remaining-requests"] == "0"
    assert statuses == [200, 200, 200, 429, 429, 429]
    for _ in range(4):  # bob is not limited by alice's limit
        assert (await post(http, routers[0], chat(), key=KEYS["bob"]))[0] == 200
    assert (await post(http, routers[0], chat(), key="sk-wrong"))[0] == 401
    metrics = await scrape(http, routers[0]) + await scrape(http, routers[1])
    assert 'client="alice"' in metrics and 'client="bob"' in metrics
    assert KEYS["alice"] not in metrics and KEYS["bob"] not in metrics
    assert (metric_value(metrics, "modelroute_rate_limited_total", client="alice") or 0) >= 1


async def test_a_tokens_limit_reserves_up_front_and_corrects_on_completion(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
) -> None:
    sim = await make_sim(tokens=10)
    doc = doc_for(sim, redis_server, "tpm", rateLimits=[{"name": "tpm", "tokensPerMinute": 3000}])
    router = await make_router(doc)
    # Worst case ~2,000 tokens (max_tokens) fits once; the answer uses ~20, so the
    # correction frees the rest and the next one fits too.
    for _ in range(3):
        status, headers, _ = await post(http, router, chat(max_tokens=2000))
        assert status == 200, headers
        assert int(headers["x-ratelimit-remaining-tokens"]) < 3000
    status, headers, answer = await post(http, router, chat(max_tokens=3500))
    assert status == 429 and answer["error"]["type"] == "tokens"


async def test_the_cache_is_shared_across_routers_survives_restarts_and_keeps_tenants_apart(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    sim = await make_sim(tokens=4)
    doc = with_clients(
        doc_for(sim, redis_server, "cache", cache={"enabled": True}), tmp_path / "secrets"
    )
    first = await make_router(doc)
    body = chat("What is 2+2?", temperature=0)
    status, headers, answer = await post(http, first, body, key=KEYS["alice"])
    assert status == 200 and headers["x-modelroute-cache"] == "miss"
    await asyncio.sleep(0.2)  # the write to Redis is not on the answer's path
    second = await make_router(doc)
    status, headers, again = await post(http, second, body, key=KEYS["alice"])
    assert status == 200 and headers["x-modelroute-cache"] == "hit" and again == answer
    # Another tenant, same request: never the other's answer.
    _, headers, _ = await post(http, second, body, key=KEYS["bob"])
    assert headers["x-modelroute-cache"] == "miss"
    await first.close()
    third = await make_router(doc)  # a restarted router: its memory is empty, Redis is not
    _status, headers, _ = await post(http, third, body, key=KEYS["alice"])
    assert headers["x-modelroute-cache"] == "hit"
    assert sim.stats.requests == 2
    metrics = await scrape(http, third)
    assert metric_value(metrics, "modelroute_cache_tier_hits_total", tier="redis") == 1.0
    assert (metric_value(metrics, "modelroute_cache_saved_usd_total", model="chat-fast") or 0) > 0


async def test_a_stopped_redis_costs_requests_nothing_and_service_resumes(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    fresh_redis_server: RedisServer,
) -> None:
    """SIGSTOP (a blackholed Redis) under 20 clients: every request answered, none waits
    much past Redis's timeout; after SIGCONT the router uses Redis again by itself."""
    redis = fresh_redis_server
    sim = await make_sim(tokens=4)
    doc = doc_for(
        sim,
        redis,
        "outage",
        budgets=[{"name": "daily", "limitUSD": 100}],
        rateLimits=[{"name": "rpm", "requestsPerMinute": 100_000}],
        cache={"enabled": True},
    )
    router = await make_router(doc)
    assert (await post(http, router, chat(max_tokens=8)))[0] == 200
    redis.pause()
    try:
        slowest = 0.0
        results: list[int] = []

        async def client(n: int) -> None:
            nonlocal slowest
            for i in range(10):
                started = time.perf_counter()
                status, _, _ = await post(
                    http, router, chat(f"c{n} r{i}", max_tokens=8, temperature=0)
                )
                slowest = max(slowest, time.perf_counter() - started)
                results.append(status)

        await asyncio.gather(*(client(n) for n in range(20)))
        assert results.count(200) == 200
        # Redis's timeout is 100 ms; a request may meet it once or twice before the
        # breaker opens (then none), never for long.
        assert slowest < 1.5
        metrics = await scrape(http, router)
        assert metric_value(metrics, "modelroute_redis_up") == 0.0
        assert (metric_value(metrics, "modelroute_redis_errors_total") or 0) >= 1
    finally:
        redis.resume()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert (await post(http, router, chat(max_tokens=8)))[0] == 200
        if metric_value(await scrape(http, router), "modelroute_redis_up") == 1.0:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the router did not go back to Redis")


async def test_redis_with_a_password_from_a_secret_and_status_shows_the_budgets(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    secret = "s3cret-redis-pw"
    server = start_redis(password=secret)
    try:
        (tmp_path / "secrets" / "redis").mkdir(parents=True)
        (tmp_path / "secrets" / "redis" / "password").write_text(secret + "\n")
        sim = await make_sim(tokens=4)
        doc = doc_for(sim, server, "auth", budgets=[{"name": "daily", "limitUSD": 5}])
        doc["spec"]["redis"]["passwordSecretRef"] = {"name": "redis", "key": "password"}
        router = await make_router(doc)
        status, headers, _ = await post(http, router, chat(max_tokens=8))
        assert status == 200
        cost = float(headers["x-modelroute-cost-usd"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the heartbeat (every 5 s) reads the budgets
            async with http.get(f"http://127.0.0.1:{router.port}/status") as resp:
                shared = (await resp.json())["sharedState"]
            if shared.get("budgets", {}).get("daily", {}).get("spentUSD", 0) > 0:
                break
            await asyncio.sleep(0.2)
        assert shared["redis"] == "up" and shared["routers"] == 1
        assert abs(shared["budgets"]["daily"]["spentUSD"] - cost) < 1e-8
        assert secret not in orjson.dumps(shared).decode()
    finally:
        server.close()


async def test_without_redis_each_router_keeps_its_own_budget(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession,
) -> None:
    """What the README promises for a route without spec.redis: per pod."""
    sim = await make_sim(tokens=16)
    doc = doc_for(sim, budgets=[{"name": "daily", "limitUSD": 0.0006}])
    one, two = await make_router(doc), await make_router(doc)
    spent_one, _, refusal = await spend_until_refused(http, [one], chat(max_tokens=16))
    assert refusal[0] == 429
    spent_two, _, refusal = await spend_until_refused(http, [two], chat(max_tokens=16))
    assert refusal[0] == 429
    assert spent_one <= 0.0006 + 1e-9 and spent_two <= 0.0006 + 1e-9
    assert spent_one + spent_two > 0.0006  # two pods, twice the budget
    async with http.get(f"http://127.0.0.1:{one.port}/status") as resp:
        shared = (await resp.json())["sharedState"]
    assert shared["redis"] == "none"
    assert abs(shared["budgets"]["daily"]["spentUSD"] - spent_one) < 1e-8


async def test_redis_up_reads_1_from_the_start_and_a_reload_moves_to_new_keys_at_once(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession,
    redis_server: RedisServer,
) -> None:
    import yaml

    from modelroute.router.state.redis import RedisClient

    sim = await make_sim(tokens=4)
    doc = doc_for(sim, redis_server, "before", budgets=[{"name": "daily", "limitUSD": 5}])
    router = await make_router(doc)
    redis = RedisClient(redis_server.url, timeout=1.0)
    try:
        deadline = time.monotonic() + 5
        while metric_value(await scrape(http, router), "modelroute_redis_up") != 1.0:
            assert time.monotonic() < deadline, "redis_up never read 1 on a healthy Redis"
            await asyncio.sleep(0.05)
        doc["spec"]["redis"]["keyPrefix"] = "after:"
        router.config_path.write_text(yaml.safe_dump(doc))
        deadline = time.monotonic() + 5
        while await redis.call("EXISTS", "after:pods") != 1:  # no request needed
            assert time.monotonic() < deadline, "the new shared state did not start"
            await asyncio.sleep(0.05)
    finally:
        await redis.close()
