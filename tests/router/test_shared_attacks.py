"""Attacks on the shared state (budgets, client rate limits, the two-tier cache): each
test is a way a client, an upstream or an operator's change could overspend a budget,
leak a reservation, misread a cache or crash a request, and shows that it no longer can.

Real routers on loopback and a real redis-server where the behaviour lives there.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from modelroute.router.auth import hashed_name
from modelroute.router.cache import MAX_ENTRY_BYTES, Entry, cacheable
from modelroute.router.metrics import Metrics
from modelroute.router.replay import Gathered
from modelroute.router.serve import RouterServer
from modelroute.router.sim import SimServer
from modelroute.router.state import shared
from modelroute.router.state.ledger import Charge, Grant, LocalLedger, parse_reserve
from modelroute.router.state.limiter import Take, parse_take
from modelroute.router.state.shared import SharedState
from modelroute.spec import SpecInvalid, parse_route
from modelroute.spec.model import Cache
from modelroute.spec.schema import ByteSize, Duration
from tests.router.budgeted import chat, doc_for, post, redis_command, redis_hash
from tests.router.conftest import (
    RouterFactory,
    SimFactory,
    metric_value,
    quiet_route,
    scrape,
)
from tests.router.redis_server import RedisServer, fresh_redis_server, redis_server, start_redis
from tests.router.scripted import (
    Reply,
    ScriptedUpstream,
    chat_json,
    delta,
    response,
    route,
    sse,
)

__all__ = ["fresh_redis_server", "redis_server"]


def _doc(
    sim: SimServer, redis: RedisServer | None = None, prefix: str = "atk", **spec: Any
) -> dict[str, Any]:
    return doc_for(sim, redis, prefix, timeout="1s", **spec)


async def _budget(redis: RedisServer, key: str) -> dict[str, int]:
    return await redis_hash(redis.port, key)


async def status_of(http: aiohttp.ClientSession, router: RouterServer) -> dict[str, Any]:
    async with http.get(f"http://127.0.0.1:{router.port}/status") as resp:
        shared: dict[str, Any] = (await resp.json())["sharedState"]
        return shared


# --- budgets ---------------------------------------------------------------------------


async def test_a_reused_request_id_cannot_spend_past_the_budget(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
) -> None:
    """x-request-id is the client's to choose. Were it the reservation's id, concurrent
    requests sharing one would replace each other's reservation (only one worst case
    held at a time: all pass) and settle once (only one cost ever charged)."""
    sim = await make_sim(tokens=16, latency_ms=300)
    limit = 0.0003  # a handful of ~$0.00006 worst cases
    for redis in (redis_server, None):
        doc = _doc(sim, redis, "reuse", budgets=[{"name": "daily", "limitUSD": limit}])
        router = await make_router(doc)
        results = await asyncio.gather(
            *(
                post(http, router, chat(f"question {i}", max_tokens=16), **{"x-request-id": "x"})
                for i in range(30)
            )
        )
        costs = [float(h["x-modelroute-cost-usd"]) for s, h, _ in results if s == 200]
        assert sum(costs) <= limit + 1e-9, (len(costs), sum(costs))
        assert all(s in (200, 429) for s, _, _ in results)
        await asyncio.sleep(0.1)  # settled after the answers went out
        if redis is None:
            spent = (await status_of(http, router))["budgets"]["daily"]["spentUSD"]
            assert abs(spent - sum(costs)) < 1e-8  # every answer was charged


def day_key(prefix: str, budget: str) -> str:
    return f"{prefix}:b:{budget}:{int(time.time()) // 86400 * 86400}"


async def test_what_was_spent_during_an_outage_reaches_redis_exactly_once(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    fresh_redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When Redis is back, the breaker's closing and the heartbeat's loop both flush the
    charges spent from the lease. Were they to share the queue unguarded, one charge
    would reach Redis twice and the next never."""
    monkeypatch.setattr(shared, "HEARTBEAT", 0.3)  # the recovery is the heartbeat's
    redis = fresh_redis_server
    sim = await make_sim(tokens=8)
    doc = _doc(sim, redis, "flush", budgets=[{"name": "daily", "limitUSD": 100}])
    doc["spec"]["redis"]["timeout"] = "100ms"
    router = await make_router(doc)
    assert (await post(http, router, chat(max_tokens=8)))[0] == 200
    redis.stop()
    during = []
    for i in range(40):  # prompts of different lengths: charges of different sizes
        status, headers, _ = await post(http, router, chat("word " * (1 + 7 * i), max_tokens=8))
        assert status == 200
        during.append(float(headers["x-modelroute-cost-usd"]))
    redis.start()  # empty: what it holds after the flush is what the outage spent
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = await status_of(http, router)
        if state["redis"] == "up" and state["pendingCharges"] == 0:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the charges never reached redis: {state}")
    spent = (await _budget(redis, day_key("flush", "daily")))["spent"] / 1e9
    assert abs(spent - sum(during)) < 1e-8 * len(during), (spent, sum(during))


async def test_outage_charges_stay_with_their_budgets_however_many_there_are() -> None:
    """A long outage leaves more charges than the queue keeps: merged ones still belong
    to the budgets they were spent against, and the queue stays bounded."""
    state = SharedState(None, "p:", Path("/nonexistent"), Metrics(), lambda: ())
    a: tuple[Charge, ...] = (Charge("a", "p:b:a:0", 10**12, 0),)
    b: tuple[Charge, ...] = (Charge("b", "p:b:b:0", 10**12, 0),)
    for i in range(shared._MAX_PENDING + 2):
        charges, cost = (a, 1) if i % 2 == 0 else (b, 5)
        await state.settle(charges, f"r{i}", cost, shared.LEASE)
    totals: dict[str, int] = {}
    for (charges, _, _), cost in state.pending.items():
        totals[charges[0].budget] = totals.get(charges[0].budget, 0) + cost
    half = (shared._MAX_PENDING + 2) // 2
    assert totals == {"a": half, "b": 5 * half}
    assert len(state.pending) <= 2


async def send_and_leave(router: RouterServer, body: dict[str, Any], after: float) -> None:
    """A client that sends a request and goes away ``after`` seconds, unanswered."""
    data = orjson.dumps(body)
    _, writer = await asyncio.open_connection("127.0.0.1", router.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(data), data)
    )
    await writer.drain()
    await asyncio.sleep(after)
    writer.close()


async def test_a_client_gone_while_its_reservation_is_being_made_leaks_nothing(
    make_sim: SimFactory, make_router: RouterFactory, fresh_redis_server: RedisServer
) -> None:
    """Redis slow to run the reservation, the client gives up meanwhile: the script still
    runs, after the router stopped waiting for it. What it reserved must come back now,
    not when the reservation expires (minutes: every attempt's total timeout)."""
    redis = fresh_redis_server
    sim = await make_sim(tokens=8)
    doc = _doc(sim, redis, "gone", budgets=[{"name": "daily", "limitUSD": 1}])
    router = await make_router(doc)
    key = day_key("gone", "daily")
    deadline = time.monotonic() + 5
    while "reserved" not in await _budget(redis, key):  # the router's lease
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await redis_command(redis.port, "CLIENT", "PAUSE", "500", "WRITE") == b"+OK\r\n"
    await send_and_leave(router, chat(max_tokens=1000), after=0.2)
    await asyncio.sleep(0.6)  # the pause is over: the script ran
    state = await _budget(redis, key)
    held = {k: v for k, v in state.items() if k.startswith("r:") and not k.startswith("r:lease:")}
    assert held == {}
    leases = sum(v for k, v in state.items() if k.startswith("r:lease:"))
    assert state["reserved"] == leases and state.get("spent", 0) == 0


async def test_a_client_gone_after_its_request_was_sent_is_charged_its_reservation(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """The upstream got the request (and bills it) when the client goes away: charging
    nothing would let a client spend without limit by never waiting for an answer."""
    sim = await make_sim(tokens=8, latency_ms=1000)
    doc = _doc(sim, budgets=[{"name": "daily", "limitUSD": 1}])
    router = await make_router(doc)
    await send_and_leave(router, chat(max_tokens=1000), after=0.3)
    await asyncio.sleep(0.2)
    daily = (await status_of(http, router))["budgets"]["daily"]
    assert daily["reservedUSD"] == 0
    assert daily["spentUSD"] >= 1000 * 2e-6  # its worst case: max_tokens at the output price


async def reload_with(router: RouterServer, doc: dict[str, Any]) -> None:
    router.config_path.write_text(yaml.safe_dump(doc))
    wanted = parse_route(doc).spec
    deadline = time.monotonic() + 3
    while router.app.table.spec != wanted:
        assert time.monotonic() < deadline, "the router did not reload"
        await asyncio.sleep(0.02)


async def test_a_reload_in_flight_settles_each_request_where_it_was_reserved(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
) -> None:
    """Requests admitted under one spec finish under the next: Redis removed (their
    reservations are in Redis, the new state has no Redis), or every budget removed
    (there is no gate left to release them)."""
    sim = await make_sim(tokens=8, latency_ms=400)
    budgets = [{"name": "daily", "limitUSD": 1}]
    with_redis = _doc(sim, redis_server, "reload", budgets=budgets)
    for after in (_doc(sim, budgets=budgets), _doc(sim, redis_server, "reload")):
        router = await make_router(with_redis)
        key = day_key("reload", "daily")
        before = (await _budget(redis_server, key)).get("spent", 0)
        flight = asyncio.create_task(post(http, router, chat(max_tokens=8)))
        await asyncio.sleep(0.15)
        await reload_with(router, after)
        second = asyncio.create_task(post(http, router, chat(max_tokens=8)))  # adopts it
        status, headers, _ = await flight
        assert status == 200 and (await second)[0] == 200
        await asyncio.sleep(0.1)
        state = await _budget(redis_server, key)
        held = [k for k in state if k.startswith("r:") and not k.startswith("r:lease:")]
        assert held == []  # released now, not at expiry
        assert abs(state["spent"] - before - float(headers["x-modelroute-cost-usd"]) * 1e9) < 10
        metrics = await scrape(http, router)
        assert metric_value(metrics, "modelroute_requests_total", code="200") == 2.0
        await router.close()


async def test_a_reload_while_a_request_waits_on_redis_does_not_fail_it(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    fresh_redis_server: RedisServer,
) -> None:
    """The request waits for its reservation; meanwhile another request adopts a spec
    with no budgets, limits or cache (the shared state goes). The first must go on."""
    redis = fresh_redis_server
    sim = await make_sim(tokens=8)
    doc = _doc(
        sim, redis, "admit", budgets=[{"name": "daily", "limitUSD": 1}], cache={"enabled": True}
    )
    router = await make_router(doc)
    assert (await post(http, router, chat(max_tokens=8)))[0] == 200
    assert await redis_command(redis.port, "CLIENT", "PAUSE", "400", "WRITE") == b"+OK\r\n"
    waiting = asyncio.create_task(post(http, router, chat(max_tokens=8)))
    await asyncio.sleep(0.1)
    await reload_with(router, _doc(sim))
    assert (await post(http, router, chat(max_tokens=8)))[0] == 200
    status, _, answer = await waiting
    assert status == 200, answer


# --- the cache ---------------------------------------------------------------------------


async def test_an_answer_degraded_by_a_budget_is_not_cached_as_the_model_asked_for(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """Past its budget, chat-fast is answered by chat-cheap. Kept under chat-fast's key,
    that answer would be served as chat-fast's for the cache's whole TTL, after the
    budget's window reset too."""
    big, small = await make_sim(tokens=8, name="big"), await make_sim(tokens=8, name="small")

    def doc(limit: float) -> dict[str, Any]:
        return quiet_route(
            {"big": [("us-east-1", big)], "small": [("us-east-1", small)]},
            models={
                "chat-fast": [("big", "upstream-model")],
                "chat-cheap": [("small", "upstream-model")],
            },
            budgets=[
                {
                    "name": "premium",
                    "limitUSD": limit,
                    "model": "chat-fast",
                    "onExceeded": "degrade",
                    "degradeTo": "chat-cheap",
                }
            ],
            cache={"enabled": True},
        )

    router = await make_router(doc(0.0))  # spent from the start
    body = chat("Which model are you?", max_tokens=8, temperature=0)
    status, headers, _ = await post(http, router, body)
    assert status == 200 and headers["x-modelroute-provider"] == "small"
    await reload_with(router, doc(10.0))  # a new window, or a larger budget
    status, headers, _ = await post(http, router, body)
    assert status == 200 and headers["x-modelroute-provider"] == "big", headers


ODD_CHUNKS = [  # JSON objects an upstream may send that a plain relay passes on as they are
    {"id": "c", "choices": [{"index": 0, "delta": "not an object"}]},
    {"id": "c", "choices": [{"index": [0], "delta": {"content": "x"}}]},
    {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": ["not an object"]}}]},
    {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"name": 7}}]}}]},
]


async def test_an_odd_chunk_in_a_cacheable_stream_is_relayed_not_a_crash(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """Folding a stream for the cache must not fail on what relaying it does not."""
    odd = iter(ODD_CHUNKS)

    def script(number: int, request: bytes) -> Reply:
        body = sse(delta("Hel"), next(odd), delta("lo", "stop"), "[DONE]")
        return Reply(response(200, body, headers={"content-type": "text/event-stream"}))

    upstream = await ScriptedUpstream(script).start()
    try:
        router = await make_router(route(upstream, cache={"enabled": True}))
        for i in range(len(ODD_CHUNKS)):
            body = {
                "model": "chat",
                "stream": True,
                "temperature": 0,
                "messages": [{"role": "user", "content": f"odd {i}"}],
            }
            async with http.post(f"{router.url}/chat/completions", json=body) as resp:
                assert resp.status == 200
                text = await resp.read()
            assert text.endswith(b"data: [DONE]\n\n"), (i, text)
    finally:
        await upstream.close()


async def test_an_odd_cached_answer_never_fails_a_streaming_client(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """An answer a plain relay passes on is cached; replayed as a stream it must not
    become a 500 for every streaming client until it expires."""
    odd = orjson.dumps({"id": "c", "object": "chat.completion", "choices": ["x"]})

    def script(number: int, request: bytes) -> Reply:
        if number == 0:
            return Reply(response(200, odd, headers={"content-type": "application/json"}))
        body = sse(delta("Hi", "stop"), "[DONE]")
        return Reply(response(200, body, headers={"content-type": "text/event-stream"}))

    upstream = await ScriptedUpstream(script).start()
    try:
        router = await make_router(route(upstream, cache={"enabled": True}))
        body = {"model": "chat", "temperature": 0, "messages": [{"role": "user", "content": "q"}]}
        async with http.post(f"{router.url}/chat/completions", json=body) as resp:
            assert resp.status == 200 and await resp.read() == odd
        async with http.post(
            f"{router.url}/chat/completions", json=body | {"stream": True}
        ) as resp:
            assert resp.status == 200, await resp.read()
    finally:
        await upstream.close()


# --- rate limits -----------------------------------------------------------------------


async def test_a_client_sees_its_own_rate_limit_headers_not_the_upstreams(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """OpenAI sends x-ratelimit-* for the router's key; the client's limit is the
    router's. Both would reach the client, and SDKs read the first (httpx joins them:
    "9999, 4" is no number)."""

    def script(number: int, request: bytes) -> Reply:
        upstream_limits = {
            "content-type": "application/json",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-reset-requests": "6ms",
        }
        return Reply(response(200, chat_json("hi"), headers=upstream_limits))

    upstream = await ScriptedUpstream(script).start()
    try:
        doc = route(upstream, rateLimits=[{"name": "rpm", "requestsPerMinute": 5}])
        router = await make_router(doc)
        body = {"model": "chat", "messages": [{"role": "user", "content": "q"}]}
        async with http.post(f"{router.url}/chat/completions", json=body) as resp:
            assert resp.status == 200
            assert resp.headers.getall("x-ratelimit-limit-requests") == ["5"]
            assert resp.headers.getall("x-ratelimit-remaining-requests") == ["4"]
            assert len(resp.headers.getall("x-ratelimit-reset-requests")) == 1
    finally:
        await upstream.close()


async def test_a_failed_request_gives_its_worst_case_tokens_back(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """Tokens are taken up front and corrected on completion: a request the upstream
    refused used none, and must not hold the client's tokens for the next minute."""
    sim = await make_sim(tokens=8, fail_rate=1.0, fail_status=400)
    doc = _doc(sim, rateLimits=[{"name": "tpm", "tokensPerMinute": 3000}])
    router = await make_router(doc)
    for _ in range(3):
        status, _, answer = await post(http, router, chat(max_tokens=2000))
        assert status == 400, answer  # the upstream's refusal, never the router's 429


def test_a_request_for_several_answers_is_never_cached() -> None:
    always = Cache(True, Duration(60.0), 10, ByteSize(1 << 20), "always")
    for n in (2, 2.0, "2"):
        assert not cacheable(always, {"n": n, "temperature": 0}, {}), n
    assert cacheable(always, {"n": 1, "temperature": 0}, {})


async def test_spend_charged_past_a_budget_does_not_leave_a_key_that_never_expires(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    redis_server: RedisServer,
) -> None:
    """A budget smaller than one request's least cost is refused before its window's key
    exists; the degraded answer's cost is charged to it all the same, and the key it
    creates must expire with the window like every other."""
    big, small = await make_sim(tokens=8), await make_sim(tokens=8)
    doc = quiet_route(
        {"big": [("us-east-1", big)], "small": [("us-east-1", small)]},
        models={
            "chat-fast": [("big", "upstream-model")],
            "chat-cheap": [("small", "upstream-model")],
        },
        budgets=[
            {
                "name": "tiny",
                "limitUSD": 1e-9,
                "onExceeded": "degrade",
                "degradeTo": "chat-cheap",
                "model": "chat-fast",
            }
        ],
    )
    doc["spec"]["redis"] = {"url": redis_server.url, "keyPrefix": "ttl:", "timeout": "1s"}
    router = await make_router(doc)
    status, headers, _ = await post(http, router, chat(max_tokens=8))
    assert status == 200 and headers["x-modelroute-degraded"] == "budget:tiny"
    await asyncio.sleep(0.1)
    key = day_key("ttl", "tiny")
    assert (await _budget(redis_server, key)).get("spent", 0) > 0
    ttl = int((await redis_command(redis_server.port, "TTL", key))[1:])
    assert 0 < ttl <= 2 * 86400


async def test_a_request_degraded_to_another_model_counts_against_that_models_budget(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """premium (chat-fast) degrades to chat-cheap, which has a budget of its own:
    degraded requests are chat-cheap's spend like any other."""
    big, small = await make_sim(tokens=16), await make_sim(tokens=16)
    limit = 0.0003
    doc = quiet_route(
        {"big": [("us-east-1", big)], "small": [("us-east-1", small)]},
        models={
            "chat-fast": [("big", "upstream-model")],
            "chat-cheap": [("small", "upstream-model")],
        },
        budgets=[
            {
                "name": "premium",
                "limitUSD": 0,
                "model": "chat-fast",
                "onExceeded": "degrade",
                "degradeTo": "chat-cheap",
            },
            {"name": "cheap", "limitUSD": limit, "model": "chat-cheap"},
        ],
    )
    router = await make_router(doc)
    spent, statuses = 0.0, []
    for i in range(20):
        status, headers, _ = await post(http, router, chat(f"q{i}", max_tokens=16))
        statuses.append(status)
        if status == 200:
            assert headers["x-modelroute-degraded"] == "budget:premium"
            spent += float(headers["x-modelroute-cost-usd"])
    assert 429 in statuses
    assert spent <= limit + 1e-9


# --- secrets and rotation --------------------------------------------------------------


async def test_a_rotated_redis_password_is_used_from_the_next_connection(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The password Secret changes with Redis's password; connections already open stay
    authenticated, and the next one must use the new password, not the one the router
    started with (else Redis is unavailable to it until a restart)."""
    server = start_redis(password="first-password")
    try:
        secret = tmp_path / "secrets" / "redis" / "password"
        secret.parent.mkdir(parents=True)
        secret.write_text("first-password\n")
        sim = await make_sim(tokens=4)
        doc = _doc(sim, server, "rotate", budgets=[{"name": "daily", "limitUSD": 5}])
        doc["spec"]["redis"]["passwordSecretRef"] = {"name": "redis", "key": "password"}
        router = await make_router(doc)
        assert (await post(http, router, chat(max_tokens=8)))[0] == 200
        secret.write_text("second-password\n")
        admin = ["AUTH", "first-password", "CONFIG", "SET", "requirepass", "second-password"]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for command in (admin[:2], admin[2:], ["CLIENT", "KILL", "TYPE", "normal"]):
            writer.write(
                b"*%d\r\n" % len(command)
                + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in command)
            )
            assert (await reader.readline())[:1] in (b"+", b":"), command
        writer.close()
        for _ in range(3):  # the first may meet the killed connection
            assert (await post(http, router, chat(max_tokens=8)))[0] == 200
        assert (await status_of(http, router))["redis"] == "up"
    finally:
        server.close()


async def test_a_named_clients_revoked_key_is_refused_without_a_restart(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A leaked key is revoked by rewriting its Secret: the router must stop taking it."""
    sim = await make_sim(tokens=4)
    secret = tmp_path / "secrets" / "alice" / "keys"
    secret.parent.mkdir(parents=True)
    secret.write_text("sk-alice-old-0123456789\n")
    doc = _doc(sim)
    doc["spec"]["auth"] = {
        "clients": [{"name": "alice", "keySecretRef": {"name": "alice", "key": "keys"}}]
    }
    router = await make_router(doc)
    old = {"authorization": "Bearer sk-alice-old-0123456789"}
    assert (await post(http, router, chat(max_tokens=4), **old))[0] == 200
    secret.write_text("sk-alice-new-9876543210\n")
    await asyncio.sleep(0.5)  # reloads are polled every 50 ms here
    assert (await post(http, router, chat(max_tokens=4), **old))[0] == 401


async def test_two_client_keys_never_share_a_label_and_so_a_tenant(
    make_sim: SimFactory, make_router: RouterFactory, tmp_path: Path
) -> None:
    """A flat key's label is 8 hex digits of its SHA-256: 32 bits, so two keys can share
    one (these two do). A shared label is a shared tenant (one reads the other's cached
    answers), budget and rate limit: such a list is refused, naming the label only."""
    first, second = "sk-team-00007228", "sk-team-00141006"  # both key-6041688b
    sim = await make_sim(tokens=4)
    (tmp_path / "secrets" / "keys").mkdir(parents=True)
    (tmp_path / "secrets" / "keys" / "list").write_text(f"{first}\n{second}\n")
    (tmp_path / "secrets" / "bob").mkdir(parents=True)
    (tmp_path / "secrets" / "bob" / "key").write_text("sk-bob-0123456789\n")
    flat = {"keysSecretRef": {"name": "keys", "key": "list"}}
    named = {
        "keysSecretRef": {"name": "bob", "key": "key"},  # labelled key-<its hash>
        "clients": [
            {"name": hashed_name("sk-bob-0123456789"), "keySecretRef": flat["keysSecretRef"]}
        ],
    }
    for auth in (flat, named):
        doc = _doc(sim, cache={"enabled": True})
        doc["spec"]["auth"] = auth
        with pytest.raises(SpecInvalid) as refused:
            await make_router(doc)
        message = str(refused.value)
        assert "key-" in message and first not in message and second not in message


async def test_both_output_limits_are_bounded_by_the_reservation(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """max_completion_tokens: 1 and max_tokens: 2000 at once. An upstream that reads
    max_tokens (DeepSeek, older OpenAI-compatible servers) writes 2,000 tokens; the
    reservation was for the field the router read, one token."""

    def script(number: int, request: bytes) -> Reply:
        asked = orjson.loads(request.split(b"\r\n\r\n", 1)[1])
        answer = orjson.loads(chat_json("word " * 5))
        answer["usage"] = {"prompt_tokens": 5, "completion_tokens": asked.get("max_tokens", 16)}
        body = orjson.dumps(answer)
        return Reply(response(200, body, headers={"content-type": "application/json"}))

    upstream = await ScriptedUpstream(script).start()
    try:
        limit = 0.001  # 500 output tokens at $2 per million
        doc = route(upstream, budgets=[{"name": "daily", "limitUSD": limit}])
        doc["spec"]["providers"][0]["pricing"] = {"m": {"input": 1.0, "output": 2.0}}
        router = await make_router(doc)
        body = {
            "model": "chat",
            "max_completion_tokens": 1,
            "max_tokens": 2000,
            "messages": [{"role": "user", "content": "q"}],
        }
        spent = 0.0
        for _ in range(3):
            async with http.post(f"{router.url}/chat/completions", json=body) as resp:
                if resp.status == 200:
                    spent += float(resp.headers["x-modelroute-cost-usd"])
        assert spent <= limit + 1e-9, spent
    finally:
        await upstream.close()


# --- what Redis sends back ---------------------------------------------------------------


def test_an_unexpected_reply_is_a_value_error_the_caller_falls_back_on() -> None:
    """Every reply the state reads is checked: a nil, a nested array or a short array is
    the ValueError callers fall back on (the lease, the local limiter), never a
    TypeError or IndexError that fails the request."""
    take = Take("k", 10, 1, "requests", "rpm")
    for reply in ([1, None, 5], [1, 5, [1]], [1, 5], [1, 7, 1, 2, 3]):
        with pytest.raises(ValueError):
            parse_reserve(reply, 2)
    for reply in ([1, 100, 5], [1, 100, None, 0, 0], [0, 0, 1, 2], [1, 100, 5, 0, 0, 0]):
        with pytest.raises(ValueError):
            parse_take((take,), reply)


def test_a_foreign_cache_value_is_a_miss_or_costs_nothing() -> None:
    """A value under the cache's prefix that another writer left: a cost that is not a
    non-negative number must not reach the saved-USD counter (a 500 on every hit)."""
    for cost in ("abc", -1.0, [1], float("inf")):
        head = orjson.dumps({"e": time.time() + 60, "h": [], "c": 0.0}).replace(
            b'"c":0.0', b'"c":' + (orjson.dumps(cost) if cost != float("inf") else b"1e999")
        )
        entry = Entry.load(head + b"\n{}")
        assert entry is None or entry.cost is None, cost


async def test_a_budget_refusal_carries_the_clients_rate_limit_headers_too(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """x-ratelimit-* go with every answer: a request that passed its rate limit and was
    then refused by a budget used a request of it all the same."""
    sim = await make_sim(tokens=8)
    doc = _doc(
        sim,
        budgets=[{"name": "daily", "limitUSD": 0}],
        rateLimits=[{"name": "rpm", "requestsPerMinute": 10}],
    )
    router = await make_router(doc)
    status, headers, answer = await post(http, router, chat(max_tokens=8))
    assert status == 429 and answer["error"]["code"] == "budget_exceeded"
    assert headers.get("x-ratelimit-limit-requests") == "10"
    assert headers.get("x-ratelimit-remaining-requests") == "9"


# --- invariants ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["reserve", "settle"]),
            st.integers(0, 3),  # which budgets: route only, client, model, all three
            st.integers(1, 400),  # want
            st.booleans(),  # clamp (minimum 1) or all-or-nothing
            st.floats(0, 1),  # the share of its grant a settled request cost
        ),
        max_size=60,
    )
)
def test_reservations_with_unique_ids_never_overspend_any_budget(
    ops: list[tuple[str, int, int, bool, float]],
) -> None:
    """Requests reserving and settling in any order (each settling at most what it was
    granted, once) never take any budget past its limit."""
    ledger = LocalLedger(clock=lambda: 0.0)
    budgets = [
        Charge("route", "r", 1000, 0),
        Charge("client", "c", 300, 0),
        Charge("m", "m", 500, 0),
    ]
    scopes = [(0,), (0, 1), (0, 2), (0, 1, 2)]
    granted: list[tuple[tuple[Charge, ...], str, int]] = []
    for number, (op, scope, want, clamp, share) in enumerate(ops):
        if op == "reserve":
            charges = tuple(budgets[i] for i in scopes[scope])
            result = ledger.reserve_now(charges, f"r{number}", want, 1 if clamp else want, 60)
            if isinstance(result, Grant) and result.amount:
                granted.append((charges, f"r{number}", result.amount))
        elif granted:
            charges, rid, amount = granted.pop(want % len(granted))
            assert ledger.settle_now(charges, rid, int(amount * share))
            assert not ledger.settle_now(charges, rid, amount)  # once per id
        for charge in budgets:
            spent, reserved, _ = ledger.usage(charge.key)
            assert 0 <= spent + reserved <= charge.limit


def test_folding_a_stream_for_the_cache_holds_no_more_than_the_cache_keeps() -> None:
    """An answer over the cache's entry limit is never kept, so folding it need not be
    held either: a stream of 16 MiB (an upstream writing on and on) costs the router
    its chunks in flight, not all of them."""
    gather = Gathered()
    piece = sse(delta("x" * 8192)).replace(b'"delta"', b'"index":0,"delta"')
    tracemalloc.start()
    try:
        for _ in range(2048):
            gather.feed(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    gather.feed(sse(delta("", "stop")))
    assert gather.completion() is None
    assert peak < 4 * MAX_ENTRY_BYTES, peak


def test_folding_a_long_stream_for_the_cache_takes_time_linear_in_it() -> None:
    """A 1 MB answer in 100,000 pieces: joined piece by piece it costs the square of its
    length (some twenty seconds of the event loop, every request waiting; 0.4 s here)."""
    chunk = orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": "y" * 10}}]})
    block = b"data: " + chunk + b"\n\n"
    gather = Gathered()
    started = time.perf_counter()
    for _ in range(100_000):
        gather.feed(block)
    gather.feed(sse(delta("", "stop")).replace(b'"delta"', b'"index":0,"delta"'))
    answer = gather.completion()
    assert time.perf_counter() - started < 4.0
    assert answer is not None
    assert len(orjson.loads(answer)["choices"][0]["message"]["content"]) == 1_000_000


async def test_a_reservation_redis_made_after_the_router_stopped_waiting_is_given_back(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    fresh_redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis busy past the call's timeout: the router answers from its lease, and the
    reservation script, still in Redis's socket buffer, runs later. What it reserved
    must come back once Redis answers again, not when it expires (minutes)."""
    monkeypatch.setattr(shared, "HEARTBEAT", 0.3)
    redis = fresh_redis_server
    sim = await make_sim(tokens=8)
    doc = _doc(sim, redis, "late", budgets=[{"name": "daily", "limitUSD": 1}])
    doc["spec"]["redis"]["timeout"] = "100ms"
    router = await make_router(doc)
    assert (await post(http, router, chat(max_tokens=8)))[0] == 200  # scripts loaded
    _, busy = await asyncio.open_connection("127.0.0.1", redis.port)
    busy.write(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n0.4\r\n")
    await asyncio.sleep(0.05)
    assert (await post(http, router, chat(max_tokens=1000)))[0] == 200  # from the lease
    key = day_key("late", "daily")
    deadline = time.monotonic() + 5
    while True:
        state = await _budget(redis, key)
        held = [k for k in state if k.startswith("r:") and not k.startswith("r:lease:")]
        if not held:
            break
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)
    busy.close()


def test_a_negative_usage_count_is_no_count() -> None:
    """An upstream reporting negative tokens must not make its 200 a 500 (a Counter
    refuses to go down) nor lower a budget's spend."""
    from modelroute.router.stream import Usage

    usage = Usage()
    usage.take({"prompt_tokens": -5, "completion_tokens": -7})
    assert (usage.prompt_tokens, usage.completion_tokens) == (0, 0)
    native = Usage()
    native.take({"input_tokens": -1, "output_tokens": -2, "cache_read_input_tokens": -3})
    assert (native.prompt_tokens, native.completion_tokens, native.cached_tokens) == (0, 0, 0)
