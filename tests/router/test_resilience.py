"""Resilience scenarios through real HTTP on loopback, against simulated upstreams.

Each test builds a ModelRoute over a few simulated upstreams in two or three
regions, breaks one or more of them the way real providers break (refused
connections, 5xx, 429 with ``Retry-After``, a stall before the first byte, a
stream cut after content, an error event inside a 200 stream), and asserts
what the client sees, what ``GET /status`` says and what the metrics count.
Durations in the configs are short (ejections of a second, probes every
200 ms) so the whole file runs in seconds; waits are bounded, and no test
asserts performance beyond "did not sleep for the Retry-After" and "the hedge
answered before the slow upstream would have".

The region-outage test prints the detection and recovery times it measured
(run with ``-s`` to see them), the retry-budget test the attempts it counted.

Tests marked ``xfail(strict=True, reason="BUG: ...")`` state behaviour the
issue asks for that the router does not have yet; the reason names the cause.
When the router is fixed they pass, and strict xfail turns that into a failure
so the marker gets removed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from time import monotonic
from typing import Any, Self, cast

import aiohttp
import orjson
import pytest
from aiohttp import web

from modelroute.router.serve import RouterServer
from modelroute.router.sim import SimServer
from tests.router.conftest import (
    RouterFactory,
    SimFactory,
    eventually,
    route_doc,
    scrape,
    sse_events,
)
from tests.router.conftest import metric_sum as metric
from tests.router.conftest import metric_value as gauge

CHAT = {"model": "chat-fast", "messages": [{"role": "user", "content": "Hello there"}]}
STREAM = {**CHAT, "stream": True}
CHAT_PATH = "/v1/chat/completions"
US, EU, AP = "us-east-1", "eu-west-1", "ap-south-1"
THREE_REGIONS = (US, EU, AP)
FULL_ANSWER = " ".join(f"tok{i}" for i in range(16))  # the simulator's default 16 tokens


# --- helpers -------------------------------------------------------------------


def resilience(**sections: dict[str, Any]) -> dict[str, Any]:
    """``spec.resilience`` for a test: probes off unless asked for, short ejections.

    Each keyword is a section (``retries``, ``outlierDetection``, ...) merged over
    the test defaults, so a test states only what its scenario depends on.
    """
    base: dict[str, dict[str, Any]] = {
        "healthCheck": {"enabled": False},
        "outlierDetection": {"baseEjectionTime": "1s", "maxEjectionTime": "3s"},
        "retries": {"backoff": {"base": "10ms", "max": "50ms"}},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return base


class Answer:
    """One response as the client saw it."""

    def __init__(
        self, status: int, headers: Any, body: bytes, elapsed: float, events: list[Any] | None
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.events = events  # parsed SSE data payloads ("[DONE]" as a string), streams only

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def region(self) -> str | None:
        region: str | None = self.headers.get("x-modelroute-region")
        return region

    @property
    def attempts(self) -> int:
        return int(self.headers["x-modelroute-attempts"])


def stream_text(events: list[Any]) -> str:
    text = ""
    for event in events:
        if isinstance(event, dict):
            for choice in event.get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
    return text


def stream_errors(events: list[Any]) -> list[dict[str, Any]]:
    return [e["error"] for e in events if isinstance(e, dict) and "error" in e]


async def call(
    http: aiohttp.ClientSession,
    router: RouterServer,
    body: dict[str, Any] | None = None,
    timeout: float = 10.0,
) -> Answer:
    """POST a chat completion; a stream is read to its end (bounded: a hang fails)."""
    body = CHAT if body is None else body
    started = monotonic()
    async with (
        asyncio.timeout(timeout),
        http.post(f"{router.url}/chat/completions", json=body) as resp,
    ):
        raw = await resp.read()
    elapsed = monotonic() - started
    events = sse_events(raw) if body.get("stream") and resp.status == 200 else None
    return Answer(resp.status, resp.headers, raw, elapsed, events)


async def status(http: aiohttp.ClientSession, router: RouterServer) -> dict[str, dict[str, Any]]:
    """``GET /status``, endpoints keyed by region (one provider per region in these tests)
    or by ``provider/region`` for every endpoint."""
    async with http.get(f"http://127.0.0.1:{router.port}/status") as resp:
        assert resp.status == 200
        doc = await resp.json()
    out: dict[str, dict[str, Any]] = {}
    for endpoint in doc["endpoints"]:
        out[f"{endpoint['provider']}/{endpoint['region']}"] = endpoint
        out.setdefault(endpoint["region"], endpoint)
    return out


def chat_calls(sim: SimServer) -> int:
    """Completion requests the simulator received (health probes are not counted)."""
    return sim.stats.by_path.get(CHAT_PATH, 0)


async def wait_state(
    http: aiohttp.ClientSession,
    router: RouterServer,
    key: str,
    states: tuple[str, ...],
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Poll ``/status`` until endpoint ``key`` is in one of ``states``."""
    async with asyncio.timeout(timeout):
        while True:
            endpoint = (await status(http, router))[key]
            if endpoint["state"] in states:
                return endpoint
            await asyncio.sleep(0.02)


# --- an endpoint that refuses connections ----------------------------------------


async def test_refused_connections_fail_over_eject_and_recover_through_a_trial(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="modelroute.health")
    local = await make_sim(name="us")
    remote = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, local), (EU, remote)]},
        resilience=resilience(outlierDetection={"consecutiveErrors": 2}),
    )
    router = await make_router(doc, region=US)
    assert (await call(http, router)).region == US

    await local.close()  # the process is gone: connections are refused
    for expected_attempts in (2, 2):
        answer = await call(http, router)
        assert answer.status == 200
        assert answer.region == EU
        assert answer.headers["x-sim-name"] == "eu"
        assert answer.attempts == expected_attempts
    state = (await status(http, router))[US]
    assert state["state"] == "ejected"
    assert state["ejections"] == 1
    assert state["lastFailure"] == "connect-failure"
    assert 0 < state["ejectedForS"] <= 1.0
    assert (await status(http, router))[EU]["state"] == "healthy"
    text = await scrape(http, router)
    assert metric(text, "modelroute_upstream_ejections_total", provider="deepseek", region=US) == 1
    assert metric(text, "modelroute_upstream_ejections_total", region=EU) == 0
    assert gauge(text, "modelroute_upstream_healthy", provider="deepseek", region=US) == 0
    assert gauge(text, "modelroute_upstream_healthy", provider="deepseek", region=EU) == 1
    assert (
        metric(text, "modelroute_upstream_attempts_total", region=US, outcome="connect-failure")
        == 2
    )
    assert any(
        "upstream ejected" in r.getMessage() and "reason=connect-failure" in r.getMessage()
        for r in caplog.records
    )

    # Ejected: the next request goes straight to the other region.
    answer = await call(http, router)
    assert (answer.status, answer.region, answer.attempts) == (200, EU, 1)

    # Back up; once the ejection runs out one trial request restores it.
    await local.start()
    local.behaviour.latency_ms = 300  # keep the trial in flight while others arrive
    await wait_state(http, router, US, ("half-open",))
    calls_before = chat_calls(local)
    answers = await asyncio.gather(*(call(http, router) for _ in range(5)))
    assert all(a.status == 200 for a in answers)
    assert sorted(a.region or "" for a in answers) == sorted([US] + [EU] * 4)
    assert chat_calls(local) == calls_before + 1  # one trial, not the backlog
    assert (await status(http, router))[US]["state"] == "healthy"
    local.behaviour.latency_ms = 0
    answer = await call(http, router)
    assert (answer.region, answer.attempts) == (US, 1)
    text = await scrape(http, router)
    assert gauge(text, "modelroute_upstream_healthy", provider="deepseek", region=US) == 1
    assert any("upstream restored" in r.getMessage() for r in caplog.records)


async def test_active_probes_detect_a_dead_endpoint_without_traffic(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    local = await make_sim(name="us")
    remote = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, local), (EU, remote)]},
        resilience=resilience(
            healthCheck={
                "enabled": True,
                "interval": "100ms",
                "timeout": "200ms",
                "unhealthyThreshold": 2,
                "healthyThreshold": 2,
            }
        ),
    )
    router = await make_router(doc, region=US)
    await eventually(lambda: local.stats.by_path.get("/v1/models", 0) >= 1)
    await local.close()
    endpoint = await wait_state(http, router, US, ("unhealthy",), timeout=3)
    assert endpoint["probesFailing"] is True
    text = await scrape(http, router)
    assert gauge(text, "modelroute_upstream_healthy", provider="deepseek", region=US) == 0
    answer = await call(http, router)
    assert (answer.status, answer.region, answer.attempts) == (200, EU, 1)

    await local.start()
    await wait_state(http, router, US, ("healthy",), timeout=3)
    answer = await call(http, router)
    assert (answer.status, answer.region) == (200, US)
    # Probes are a cheap GET of the model list, never a paid completion.
    assert chat_calls(remote) == 1
    assert remote.stats.by_path.get("/v1/models", 0) >= 2
    assert remote.stats.last_headers.get("user-agent") == "modelroute-health"


# --- an endpoint that answers 503 ------------------------------------------------


async def test_5xx_fails_over_and_ejects_after_consecutive_errors(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    local = await make_sim(name="us", fail_rate=1.0, fail_status=503)
    remote = await make_sim(name="eu")
    far = await make_sim(name="ap")
    doc = route_doc(
        {"deepseek": [(US, local), (EU, remote), (AP, far)]},
        regions=THREE_REGIONS,
        resilience=resilience(
            outlierDetection={
                "consecutiveErrors": 3,
                "baseEjectionTime": "10s",
                "maxEjectionTime": "10s",
            }
        ),
    )
    router = await make_router(doc, region=US)
    for _ in range(3):
        answer = await call(http, router)
        assert answer.status == 200
        assert answer.region in (EU, AP)
        assert answer.attempts == 2
        assert answer.json()["choices"][0]["message"]["content"] == FULL_ANSWER
    assert chat_calls(local) == 3
    state = (await status(http, router))[US]
    assert (state["state"], state["ejections"], state["lastFailure"]) == ("ejected", 1, "5xx")
    text = await scrape(http, router)
    assert metric(text, "modelroute_upstream_ejections_total", provider="deepseek", region=US) == 1
    assert metric(text, "modelroute_retries_total") == 3
    assert metric(text, "modelroute_failovers_total", from_region=US) == 3
    assert (
        metric(text, "modelroute_failovers_total", from_region=US, to_region=EU)
        + metric(text, "modelroute_failovers_total", from_region=US, to_region=AP)
        == 3
    )
    assert metric(text, "modelroute_upstream_attempts_total", region=US, outcome="5xx") == 3
    assert gauge(text, "modelroute_upstream_healthy", provider="deepseek", region=US) == 0

    # Ejected: no more traffic to it, no more retries or failovers.
    for _ in range(5):
        answer = await call(http, router)
        assert (answer.status, answer.attempts) == (200, 1)
        assert answer.region in (EU, AP)
    assert chat_calls(local) == 3
    text = await scrape(http, router)
    assert metric(text, "modelroute_retries_total") == 3
    assert chat_calls(remote) + chat_calls(far) == 8


# --- an endpoint that answers 429 with Retry-After ------------------------------------


async def test_429_moves_on_at_once_and_cools_the_endpoint_down(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    limited = await make_sim(name="us", fail_rate=1.0, fail_status=429, retry_after=2)
    other = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, limited), (EU, other)]},
        resilience=resilience(rateLimit={"defaultCooldown": "1s", "maxCooldown": "10s"}),
    )
    router = await make_router(doc, region=US)

    answer = await call(http, router)
    assert (answer.status, answer.region, answer.attempts) == (200, EU, 2)
    assert answer.elapsed < 1.0  # it did not sleep for the 2 s the upstream asked
    state = (await status(http, router))[US]
    assert state["state"] == "cooling"
    assert 1.0 < state["coolingForS"] <= 2.0
    assert state["lastFailure"] == "429"
    assert state["ejections"] == 0  # a rate limit is not an error
    text = await scrape(http, router)
    assert metric(text, "modelroute_upstream_attempts_total", region=US, outcome="429") == 1
    assert gauge(text, "modelroute_upstream_healthy", provider="deepseek", region=US) == 0

    # During the cooldown no traffic reaches it.
    answers = await asyncio.gather(*(call(http, router) for _ in range(10)))
    assert all((a.status, a.region, a.attempts) == (200, EU, 1) for a in answers)
    assert chat_calls(limited) == 1

    # When it runs out, one trial goes first; its success reopens the endpoint.
    limited.behaviour.update({"fail_rate": 0.0, "latency_ms": 300})
    await wait_state(http, router, US, ("half-open",), timeout=3)
    answers = await asyncio.gather(*(call(http, router) for _ in range(5)))
    assert all(a.status == 200 for a in answers)
    assert [a.region for a in answers].count(US) == 1
    assert chat_calls(limited) == 2
    assert (await status(http, router))[US]["state"] == "healthy"


async def test_everything_rate_limited_gives_the_last_429_with_its_own_retry_after(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    first = await make_sim(name="us", fail_rate=1.0, fail_status=429, retry_after=3)
    second = await make_sim(name="eu", fail_rate=1.0, fail_status=429, retry_after=3)
    doc = route_doc({"deepseek": [(US, first), (EU, second)]}, resilience=resilience())
    router = await make_router(doc, region=US)

    # Every candidate answered 429: the client gets the last one, with the upstream's own
    # Retry-After (not a cooldown of ours), so its SDK raises RateLimitError and waits.
    answer = await call(http, router)
    assert answer.status == 429
    assert answer.elapsed < 1.5  # neither Retry-After was slept through
    assert answer.json()["error"]["type"] == "rate_limit_error"
    assert answer.headers["retry-after"] == "3"
    assert answer.headers["x-modelroute-attempt-log"] == (
        f"deepseek/{US}/upstream-model=429 retry-after 3s, "
        f"deepseek/{EU}/upstream-model=429 retry-after 3s"
    )
    assert (chat_calls(first), chat_calls(second)) == (1, 1)
    states = await status(http, router)
    assert states[US]["state"] == states[EU]["state"] == "cooling"

    # Still cooling: panic mode tries one endpoint once, and relays its 429.
    answer = await call(http, router)
    assert answer.status == 429
    assert answer.headers["retry-after"] == "3"
    assert answer.attempts == 1
    assert chat_calls(first) + chat_calls(second) == 3

    # Streams too: the 429 came before any stream started.
    answer = await call(http, router, STREAM)
    assert answer.status == 429
    assert answer.headers["retry-after"] == "3"


async def test_cooldown_is_capped_extended_by_a_failure_right_after_and_reported(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    short = await make_sim(name="us", fail_rate=1.0, fail_status=429, retry_after=1)
    greedy = await make_sim(name="eu", fail_rate=1.0, fail_status=429, retry_after=30)
    doc = route_doc(
        {"deepseek": [(US, short), (EU, greedy)]},
        resilience=resilience(rateLimit={"defaultCooldown": "1s", "maxCooldown": "5s"}),
    )
    router = await make_router(doc, region=US)
    answer = await call(http, router)
    assert answer.status == 429
    states = await status(http, router)
    assert 0.5 < states[US]["coolingForS"] <= 1.0  # Retry-After: 1
    assert 4.5 < states[EU]["coolingForS"] <= 5.0  # Retry-After: 30, capped by maxCooldown
    # The client may come back when the first candidate is due back (US asked for 1 s),
    # not when the last one asked (30 s); the cap is the router's business.
    assert answer.headers["retry-after"] == "1"

    # The trial after the cooldown is rate-limited again: the cooldown doubles.
    await wait_state(http, router, US, ("half-open",), timeout=3)
    answer = await call(http, router)
    assert answer.status == 429
    assert chat_calls(short) == 2 and chat_calls(greedy) == 1
    state = (await status(http, router))[US]
    assert state["state"] == "cooling"
    assert 1.5 < state["coolingForS"] <= 2.0
    assert answer.headers["retry-after"] == "1"  # the trial's own, not the doubled cooldown


async def test_429_not_retried_by_policy_passes_through_and_still_cools(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    limited = await make_sim(name="us", fail_rate=1.0, fail_status=429, retry_after=2)
    other = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, limited), (EU, other)]},
        resilience=resilience(retries={"retryOn": ["connect-failure", "timeout", "5xx"]}),
    )
    router = await make_router(doc, region=US)
    answer = await call(http, router)
    assert answer.status == 429
    assert answer.headers["retry-after"] == "2"
    assert answer.headers["x-modelroute-region"] == US
    assert answer.json()["error"]["type"] == "rate_limit_error"
    assert chat_calls(other) == 0
    assert (await status(http, router))[US]["state"] == "cooling"
    # The next request skips the cooling endpoint.
    answer = await call(http, router)
    assert (answer.status, answer.region, answer.attempts) == (200, EU, 1)


async def test_half_open_admits_one_trial_even_when_an_older_request_ends(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    limited = await make_sim(name="us", latency_ms=800)
    other = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, limited), (EU, other)]},
        resilience=resilience(rateLimit={"defaultCooldown": "200ms", "maxCooldown": "5s"}),
    )
    router = await make_router(doc, region=US)
    older = asyncio.create_task(call(http, router))  # in flight on the endpoint throughout
    await eventually(lambda: limited.stats.in_flight == 1)
    limited.behaviour.update({"latency_ms": 0, "fail_rate": 1.0, "fail_status": 429})
    assert (await call(http, router)).region == EU  # 429: a 200 ms cooldown, then half-open
    limited.behaviour.update({"latency_ms": 1000, "fail_rate": 0.0})
    await wait_state(http, router, US, ("half-open",), timeout=3)
    trial = asyncio.create_task(call(http, router))
    await eventually(lambda: limited.stats.in_flight == 2)
    older.cancel()  # its client hangs up; the router cancels its upstream request
    await eventually(lambda: limited.stats.cancelled == 1)
    # The trial is still in flight: the next request must not become a second trial.
    answer = await call(http, router)
    trial_answer = await trial
    assert trial_answer.region == US
    assert (answer.status, answer.region) == (200, EU)
    assert chat_calls(limited) == 3


# --- an endpoint that stalls before the first byte ------------------------------------


async def test_stall_before_first_byte_times_out_and_fails_over(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    stalled = await make_sim(name="us", stall=True)
    healthy = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, stalled), (EU, healthy)]},
        resilience=resilience(
            timeouts={"firstToken": "300ms", "total": "5s"},
            outlierDetection={"consecutiveErrors": 5},
        ),
    )
    router = await make_router(doc, region=US)

    answer = await call(http, router)
    assert (answer.status, answer.region, answer.attempts) == (200, EU, 2)
    assert answer.elapsed >= 0.29  # it waited for the first-token timeout, then moved on
    assert answer.elapsed < 3.0

    answer = await call(http, router, STREAM)
    assert (answer.status, answer.region, answer.attempts) == (200, EU, 2)
    assert answer.events is not None
    assert answer.events[-1] == "[DONE]"
    assert stream_text(answer.events) == FULL_ANSWER
    assert not stream_errors(answer.events)

    text = await scrape(http, router)
    assert metric(text, "modelroute_upstream_attempts_total", region=US, outcome="timeout") == 2
    assert metric(text, "modelroute_failovers_total", from_region=US, to_region=EU) == 2
    # The abandoned upstream requests were cancelled, not left hanging.
    await eventually(lambda: stalled.stats.cancelled == 2 and stalled.stats.in_flight == 0)
    assert (await status(http, router))[US]["lastFailure"] == "timeout"


# --- an endpoint that dies mid-stream ------------------------------------------------


async def test_stream_cut_after_content_ends_with_an_error_event(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    cutting = await make_sim(name="us", tokens=8, die_after_tokens=3, token_delay_ms=20)
    healthy = await make_sim(name="eu", tokens=8)
    doc = route_doc(
        {"deepseek": [(US, cutting), (EU, healthy)]},
        resilience=resilience(outlierDetection={"consecutiveErrors": 1000}),
    )
    router = await make_router(doc, region=US)

    answer = await call(http, router, STREAM, timeout=5)
    assert answer.status == 200
    assert answer.region == US  # committed to the first upstream: no replay elsewhere
    assert answer.events is not None
    text = stream_text(answer.events)
    assert text.startswith("tok0")
    assert "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7".startswith(text)
    assert text != "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    assert "[DONE]" not in answer.events
    errors = stream_errors(answer.events)
    assert len(errors) == 1
    assert answer.events[-1] == {"error": errors[0]}
    assert set(errors[0]) == {"message", "type", "param", "code"}
    assert errors[0]["code"] == "stream_interrupted"
    assert errors[0]["type"] == "server_error"
    assert chat_calls(healthy) == 0

    text_metrics = await scrape(http, router)
    assert (
        metric(text_metrics, "modelroute_stream_interrupted_total", provider="deepseek", region=US)
        == 1
    )


async def test_repeated_stream_cuts_eject_the_endpoint(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    cutting = await make_sim(name="us", tokens=8, die_after_tokens=3, token_delay_ms=10)
    healthy = await make_sim(name="eu", tokens=8)
    doc = route_doc(
        {"deepseek": [(US, cutting), (EU, healthy)]},
        resilience=resilience(
            outlierDetection={
                "consecutiveErrors": 3,
                "baseEjectionTime": "10s",
                "maxEjectionTime": "10s",
            }
        ),
    )
    router = await make_router(doc, region=US)
    for _ in range(3):
        answer = await call(http, router, STREAM, timeout=5)
        assert answer.region == US
        assert answer.events is not None
        assert [e["code"] for e in stream_errors(answer.events)] == ["stream_interrupted"]
    # Three cut streams in a row are three consecutive errors: the endpoint is ejected
    # and later streams go elsewhere, clean.
    assert (await status(http, router))[US]["state"] == "ejected"
    for _ in range(3):
        answer = await call(http, router, STREAM, timeout=5)
        assert (answer.status, answer.region) == (200, EU)
        assert answer.events is not None
        assert answer.events[-1] == "[DONE]"
        assert stream_text(answer.events) == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    assert chat_calls(cutting) == 3
    text = await scrape(http, router)
    assert metric(text, "modelroute_stream_interrupted_total", region=US) == 3
    assert metric(text, "modelroute_upstream_ejections_total", region=US) == 1


async def test_stream_cuts_eject_with_consecutive_errors_1(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    """Post-commit failures do count against health: with a threshold of 1 one cut ejects."""
    cutting = await make_sim(name="us", tokens=8, die_after_tokens=3, token_delay_ms=10)
    healthy = await make_sim(name="eu", tokens=8)
    doc = route_doc(
        {"deepseek": [(US, cutting), (EU, healthy)]},
        resilience=resilience(
            outlierDetection={
                "consecutiveErrors": 1,
                "baseEjectionTime": "10s",
                "maxEjectionTime": "10s",
            }
        ),
    )
    router = await make_router(doc, region=US)
    answer = await call(http, router, STREAM, timeout=5)
    assert answer.events is not None
    assert [e["code"] for e in stream_errors(answer.events)] == ["stream_interrupted"]
    assert (await status(http, router))[US]["state"] == "ejected"
    answer = await call(http, router, STREAM, timeout=5)
    assert (answer.status, answer.region, answer.attempts) == (200, EU, 1)
    assert answer.events is not None and answer.events[-1] == "[DONE]"
    assert chat_calls(cutting) == 1


# --- an error event inside a 200 stream, before content ----------------------------------


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        ({"stream_error_before_content": True}, "5xx"),  # data: {"error": ...} inside a 200
        ({"die_after_tokens": 0, "token_delay_ms": 10}, "reset"),  # cut after role
    ],
    ids=["error-event", "cut-before-content"],
)
async def test_failure_before_content_fails_over_transparently(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    behaviour: dict[str, Any],
    outcome: str,
) -> None:
    broken = await make_sim(name="us", **behaviour)
    healthy = await make_sim(name="eu", tokens=6)
    doc = route_doc({"deepseek": [(US, broken), (EU, healthy)]}, resilience=resilience())
    router = await make_router(doc, region=US)

    answer = await call(http, router, STREAM, timeout=5)
    assert answer.status == 200
    assert (answer.region, answer.attempts) == (EU, 2)
    assert answer.headers["x-sim-name"] == "eu"
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.events is not None
    assert not stream_errors(answer.events)
    assert answer.events[-1] == "[DONE]"
    assert stream_text(answer.events) == "tok0 tok1 tok2 tok3 tok4 tok5"
    # Exactly one opening role chunk: the failed upstream's was held back, never sent.
    roles = [
        e
        for e in answer.events
        if isinstance(e, dict)
        and e.get("choices")
        and e["choices"][0].get("delta", {}).get("role") == "assistant"
    ]
    assert len(roles) == 1
    assert chat_calls(broken) == 1
    text = await scrape(http, router)
    assert metric(text, "modelroute_stream_interrupted_total") == 0
    assert metric(text, "modelroute_failovers_total", from_region=US, to_region=EU) == 1
    assert metric(text, "modelroute_upstream_attempts_total", region=US, outcome=outcome) == 1


async def test_stream_that_outlives_the_total_timeout_ends_with_an_error_event(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    slow = await make_sim(name="us", tokens=50, token_delay_ms=50)
    doc = route_doc(
        {"deepseek": [(US, slow)]},
        resilience=resilience(timeouts={"firstToken": "300ms", "total": "400ms"}),
    )
    router = await make_router(doc, region=US)
    answer = await call(http, router, STREAM, timeout=5)
    assert answer.status == 200
    assert answer.events is not None
    assert stream_text(answer.events).startswith("tok0")
    assert "[DONE]" not in answer.events
    assert [e["code"] for e in stream_errors(answer.events)] == ["stream_interrupted"]
    assert answer.elapsed < 3.0  # ended by the router, not by the upstream finishing
    await eventually(lambda: slow.stats.cancelled == 1 and slow.stats.in_flight == 0)
    text = await scrape(http, router)
    assert metric(text, "modelroute_stream_interrupted_total", region=US) == 1
    assert metric(text, "modelroute_upstream_attempts_total", region=US, outcome="timeout") == 1


class JsonOnlyUpstream:
    """An OpenAI-compatible upstream that ignores ``stream`` and always answers one JSON
    document (some providers and self-hosted servers do); the simulator always streams."""

    content = "whole answer"
    answer_id = "chatcmpl-json"

    def __init__(self) -> None:
        self.requests = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    def failure(self) -> web.Response | None:
        """An error answer for the request just counted, or None to answer it."""
        return None

    async def __aenter__(self) -> Self:
        async def chat(request: web.Request) -> web.Response:
            self.requests += 1
            body = await request.json()
            failed = self.failure()
            if failed is not None:
                return failed
            message = {"role": "assistant", "content": self.content}
            return web.json_response(
                {
                    "id": self.answer_id,
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
                }
            )

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def test_stream_request_answered_with_json_releases_the_endpoint(
    make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    async with JsonOnlyUpstream() as upstream:
        doc = route_doc({"deepseek": [(US, cast(SimServer, upstream))]}, resilience=resilience())
        router = await make_router(doc, region=US)
        for _ in range(3):
            answer = await call(http, router, STREAM)
            assert answer.status == 200
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["choices"][0]["message"]["content"] == "whole answer"
        assert upstream.requests == 3
        assert (await status(http, router))[US]["inFlight"] == 0


# --- model fallback ------------------------------------------------------------------


async def test_model_fallback_when_the_first_target_fails_everywhere(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    ds_us = await make_sim(name="ds-us", fail_rate=1.0, fail_status=500)
    ds_eu = await make_sim(name="ds-eu", fail_rate=1.0, fail_status=502)
    glm_eu = await make_sim(name="glm-eu")
    doc = route_doc(
        {"deepseek": [(US, ds_us), (EU, ds_eu)], "glm": [(EU, glm_eu)]},
        models={"chat-fast": [("deepseek", "upstream-model"), ("glm", "glm-4")]},
        resilience=resilience(outlierDetection={"consecutiveErrors": 1000}),
    )
    router = await make_router(doc, region=US)

    answer = await call(http, router)
    assert answer.status == 200
    assert answer.headers["x-modelroute-provider"] == "glm"
    assert answer.headers["x-modelroute-model"] == "glm-4"
    assert answer.headers["x-modelroute-region"] == EU
    assert answer.attempts == 3
    assert answer.json()["model"] == "glm-4"
    assert glm_eu.stats.last_body["model"] == "glm-4"
    assert ds_us.stats.last_body["model"] == "upstream-model"

    answer = await call(http, router, STREAM, timeout=5)
    assert answer.status == 200
    assert answer.headers["x-modelroute-provider"] == "glm"
    assert answer.headers["x-modelroute-model"] == "glm-4"
    assert answer.events is not None and answer.events[-1] == "[DONE]"

    assert (chat_calls(ds_us), chat_calls(ds_eu), chat_calls(glm_eu)) == (2, 2, 2)
    text = await scrape(http, router)
    assert metric(text, "modelroute_fallbacks_total", model="chat-fast", target="glm/glm-4") == 2
    assert (
        metric(
            text, "modelroute_fallbacks_total", model="chat-fast", target="deepseek/upstream-model"
        )
        == 0
    )


# --- same target or next target ----------------------------------------------------------


class FlakyUpstream(JsonOnlyUpstream):
    """An upstream that fails its first ``failures`` chat requests with ``status`` (and a
    ``Retry-After`` when given), then answers; the simulator fails at random, not in order."""

    content = "flaky answer"
    answer_id = "chatcmpl-flaky"

    def __init__(self, failures: int, status: int = 500, retry_after: int | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.status = status
        self.retry_after = retry_after

    def failure(self) -> web.Response | None:
        if self.requests > self.failures:
            return None
        headers = {} if self.retry_after is None else {"retry-after": str(self.retry_after)}
        error = {"message": "flaky", "type": "server_error", "param": None, "code": None}
        return web.json_response({"error": error}, status=self.status, headers=headers)


def primary_and_fallback(primary: FlakyUpstream, fallback: SimServer, **sections: Any) -> Any:
    """chat-fast: deepseek (one endpoint, ``primary``), then glm (``fallback``)."""
    return route_doc(
        {"deepseek": [(US, cast(SimServer, primary))], "glm": [(US, fallback)]},
        models={"chat-fast": [("deepseek", "upstream-model"), ("glm", "glm-4")]},
        resilience=resilience(**sections),
    )


async def test_a_one_off_5xx_retries_the_asked_for_target_before_the_fallback(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    glm = await make_sim(name="glm")
    async with FlakyUpstream(failures=1, status=500) as primary:
        router = await make_router(primary_and_fallback(primary, glm), region=US)
        answer = await call(http, router)
        assert answer.status == 200
        assert answer.headers["x-modelroute-provider"] == "deepseek"
        assert answer.attempts == 2
        assert answer.elapsed < 1.0  # one short backoff
        assert (primary.requests, chat_calls(glm)) == (2, 0)


async def test_same_target_wait_0s_falls_to_the_next_target_at_once(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    glm = await make_sim(name="glm")
    async with FlakyUpstream(failures=1, status=500) as primary:
        doc = primary_and_fallback(primary, glm, retries={"sameTargetWait": "0s"})
        router = await make_router(doc, region=US)
        answer = await call(http, router)
        assert (answer.status, answer.headers["x-modelroute-provider"]) == (200, "glm")
        assert (primary.requests, chat_calls(glm)) == (1, 1)


async def test_a_short_retry_after_is_waited_for_by_one_request_only(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    glm = await make_sim(name="glm")
    async with FlakyUpstream(failures=1, status=429, retry_after=1) as primary:
        router = await make_router(primary_and_fallback(primary, glm), region=US)
        answer = await call(http, router)
        # The model the client asked for, once its 1 s Retry-After has passed.
        assert (answer.status, answer.headers["x-modelroute-provider"]) == (200, "deepseek")
        assert answer.attempts == 2
        assert 1.0 <= answer.elapsed < 2.0
        assert (primary.requests, chat_calls(glm)) == (2, 0)

    # Many requests meet the same short Retry-After: one waits for the trial, the others
    # go to the next target at once (no stampede when the cooldown ends).
    async with FlakyUpstream(failures=5, status=429, retry_after=1) as primary:
        glm.stats.reset()
        router = await make_router(primary_and_fallback(primary, glm), region=US)
        answers = await asyncio.gather(*(call(http, router) for _ in range(5)))
        assert all(a.status == 200 for a in answers)
        waited = [a for a in answers if a.headers["x-modelroute-provider"] == "deepseek"]
        assert len(waited) <= 1
        assert sum(1 for a in answers if a.elapsed < 0.8) >= 4
        assert primary.requests <= 6


async def test_a_long_retry_after_moves_to_the_next_target_at_once(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    glm = await make_sim(name="glm")
    async with FlakyUpstream(failures=1, status=429, retry_after=5) as primary:
        router = await make_router(primary_and_fallback(primary, glm), region=US)
        answer = await call(http, router)
        assert (answer.status, answer.headers["x-modelroute-provider"]) == (200, "glm")
        assert answer.elapsed < 0.5
        assert (primary.requests, chat_calls(glm)) == (1, 1)


async def test_the_retry_budget_never_refuses_a_healthy_fallback(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    n = 20
    ds_us = await make_sim(name="ds-us", fail_rate=1.0, fail_status=503, latency_ms=300)
    ds_eu = await make_sim(name="ds-eu", fail_rate=1.0, fail_status=503, latency_ms=300)
    glm = await make_sim(name="glm")
    doc = route_doc(
        {"deepseek": [(US, ds_us), (EU, ds_eu)], "glm": [(EU, glm)]},
        models={"chat-fast": [("deepseek", "upstream-model"), ("glm", "glm-4")]},
        resilience=resilience(
            retries={"budgetPercent": 10, "minRetryConcurrency": 1},
            outlierDetection={"consecutiveErrors": 1000},  # keep ejection out of this test
        ),
    )
    router = await make_router(doc, region=US)
    answers = await asyncio.gather(*(call(http, router) for _ in range(n)))
    # Every request fails twice where failure is certain, together; moving on to a
    # candidate it has not tried is failover, not a retry storm: never refused.
    assert [a.status for a in answers] == [200] * n
    assert all(a.headers["x-modelroute-provider"] == "glm" for a in answers)
    assert (chat_calls(ds_us), chat_calls(ds_eu), chat_calls(glm)) == (n, n, n)
    text = await scrape(http, router)
    assert metric(text, "modelroute_retries_refused_by_budget_total") == 0


async def test_our_503_names_each_candidate_tried_and_what_it_got(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    ds_us = await make_sim(name="ds-us", fail_rate=1.0, fail_status=503)
    ds_eu = await make_sim(name="ds-eu", fail_rate=1.0, fail_status=429, retry_after=30)
    glm = await make_sim(name="glm", stall=True)  # last, and no answer: our own 503
    doc = route_doc(
        {"deepseek": [(US, ds_us), (EU, ds_eu)], "glm": [(EU, glm)]},
        models={"chat-fast": [("deepseek", "upstream-model"), ("glm", "glm-4")]},
        resilience=resilience(timeouts={"firstToken": "200ms"}),
    )
    router = await make_router(doc, region=US)
    answer = await call(http, router)
    assert answer.status == 503
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.attempts == 3
    log = answer.headers["x-modelroute-attempt-log"]
    assert log == (
        f"deepseek/{US}/upstream-model=503, deepseek/{EU}/upstream-model=429 retry-after 30s, "
        f"glm/{EU}/glm-4=timeout"
    )
    assert answer.json()["error"]["code"] == "upstream_unavailable"
    assert f"(tried: {log})" in answer.json()["error"]["message"]
    for sim in (ds_us, ds_eu, glm):  # names from the spec, never an upstream's address
        assert str(sim.port) not in log


async def test_a_passing_probe_ends_an_ejection_long_before_its_time(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    local = await make_sim(name="us")
    remote = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, local), (EU, remote)]},
        resilience=resilience(
            outlierDetection={
                "consecutiveErrors": 2,
                "baseEjectionTime": "30s",
                "maxEjectionTime": "30s",
            },
            healthCheck={"enabled": True, "interval": "10s", "unhealthyInterval": "200ms"},
        ),
    )
    router = await make_router(doc, region=US)
    await local.close()
    for _ in range(2):
        assert (await call(http, router)).region == EU
    state = await wait_state(http, router, US, ("ejected",))
    assert state["ejectedForS"] > 25  # for 30 s, by its timer
    await asyncio.sleep(0.5)  # out of service: probed every 200 ms (not 10 s), failing
    await local.start()
    restarted = monotonic()
    await wait_state(http, router, US, ("half-open",), timeout=2)
    assert monotonic() - restarted < 1.0
    answer = await call(http, router)
    assert (answer.status, answer.region, answer.attempts) == (200, US, 1)  # the trial
    assert (await status(http, router))[US]["state"] == "healthy"


# --- retry budget and panic mode --------------------------------------------------------


async def test_retry_budget_bounds_upstream_attempts_when_everything_fails(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    n = 20
    attempts, budget_percent, min_retry_concurrency = 2, 20, 2
    latency_ms = 300
    sims = [
        await make_sim(name=region, fail_rate=1.0, fail_status=500, latency_ms=latency_ms)
        for region in (US, EU)
    ]
    doc = route_doc(
        {"deepseek": [(US, sims[0]), (EU, sims[1])]},
        resilience=resilience(
            retries={
                "attempts": attempts,
                "budgetPercent": budget_percent,
                "minRetryConcurrency": min_retry_concurrency,
            },
            outlierDetection={"consecutiveErrors": 1000},  # keep ejection out of this test
        ),
    )
    router = await make_router(doc, region=US)

    answers = await asyncio.gather(*(call(http, router) for _ in range(n)))
    assert all(a.status == 500 for a in answers)  # the last upstream answer, relayed
    assert all(a.headers["x-modelroute-attempt-log"] for a in answers)
    total = sum(chat_calls(sim) for sim in sims)
    # The budget limits retries, not failover: each request tries each endpoint once for
    # free. Only going back to an endpoint that already failed it spends the budget, which
    # caps such retries *in flight* at max(minRetryConcurrency, budget% of requests in
    # flight). All n requests reach their second endpoint together (each attempt takes
    # latency_ms) and fail there together, so at most that many get a third attempt.
    in_flight_cap = max(min_retry_concurrency, math.ceil(n * budget_percent / 100))
    bound = n * len(sims) + (1 + attempts - len(sims)) * in_flight_cap
    without_budget = n * (1 + attempts)
    print(
        f"\nretry budget: {total} upstream attempts for {n} requests "
        f"(bound {bound}, {without_budget} without a budget)"
    )
    assert n * len(sims) <= total <= bound < without_budget
    text = await scrape(http, router)
    refused = metric(text, "modelroute_retries_refused_by_budget_total")
    assert refused >= n - in_flight_cap
    assert metric(text, "modelroute_retries_total") == total - n


async def test_panic_mode_gives_one_attempt_per_request_then_relays_its_answer(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sims = [await make_sim(name=region, fail_rate=1.0, fail_status=500) for region in THREE_REGIONS]
    doc = route_doc(
        {"deepseek": [(region, sim) for region, sim in zip(THREE_REGIONS, sims, strict=True)]},
        regions=THREE_REGIONS,
        resilience=resilience(
            retries={"attempts": 4},
            outlierDetection={
                "consecutiveErrors": 1,
                "baseEjectionTime": "20s",
                "maxEjectionTime": "20s",
                "maxEjectionPercent": 100,
            },
        ),
    )
    router = await make_router(doc, region=US)

    # One request tries each region once; each failure ejects its endpoint.
    answer = await call(http, router)
    assert answer.status == 500
    assert answer.attempts == 3
    assert [chat_calls(sim) for sim in sims] == [1, 1, 1]
    states = await status(http, router)
    assert all(states[region]["state"] == "ejected" for region in THREE_REGIONS)
    text = await scrape(http, router)
    assert metric(text, "modelroute_upstream_ejections_total") == 3

    # Everything ejected: panic mode tries one endpoint (rather than failing closed),
    # and when that fails too the client gets its answer at once.
    n = 10
    answers = await asyncio.gather(*(call(http, router) for _ in range(n)))
    for panic in answers:
        assert panic.status == 500
        assert panic.attempts == 1
        assert panic.headers["x-modelroute-attempt-log"].endswith("=500 (panic)")
        assert panic.json()["error"]["message"] == "simulated failure (500)"
    assert sum(chat_calls(sim) for sim in sims) == 3 + n
    text = await scrape(http, router)
    assert metric(text, "modelroute_panic_attempts_total") == n


async def test_panic_mode_answers_when_the_least_recently_failed_endpoint_is_back(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sims = [await make_sim(name=region, fail_rate=1.0, fail_status=500) for region in (US, EU)]
    doc = route_doc(
        {"deepseek": [(US, sims[0]), (EU, sims[1])]},
        resilience=resilience(
            outlierDetection={
                "consecutiveErrors": 1,
                "baseEjectionTime": "20s",
                "maxEjectionTime": "20s",
                "maxEjectionPercent": 100,
            },
        ),
    )
    router = await make_router(doc, region=US)
    assert (await call(http, router)).status == 500
    states = await status(http, router)
    assert states[US]["state"] == states[EU]["state"] == "ejected"
    sims[0].behaviour.fail_rate = 0.0  # US failed first: the least recently failed one
    answer = await call(http, router)
    assert (answer.status, answer.region, answer.attempts) == (200, US, 1)
    # The panic attempt worked: the endpoint is back in service without waiting 20 s.
    assert (await status(http, router))[US]["state"] == "healthy"


async def test_max_ejection_percent_keeps_endpoints_in_service_degraded(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sims = [await make_sim(name=region, fail_rate=1.0, fail_status=500) for region in THREE_REGIONS]
    doc = route_doc(
        {"deepseek": [(region, sim) for region, sim in zip(THREE_REGIONS, sims, strict=True)]},
        regions=THREE_REGIONS,
        resilience=resilience(
            outlierDetection={
                "consecutiveErrors": 1,
                "baseEjectionTime": "20s",
                "maxEjectionTime": "20s",
                "maxEjectionPercent": 50,  # of 3 endpoints: 1 at a time
            },
        ),
    )
    router = await make_router(doc, region=US)
    for _ in range(4):
        answer = await call(http, router)
        assert answer.status == 500
        assert answer.attempts == 3  # with nowhere else to go, degraded ones are still tried
    states = await status(http, router)
    assert sorted(states[region]["state"] for region in THREE_REGIONS) == [
        "degraded",
        "degraded",
        "ejected",
    ]
    text = await scrape(http, router)
    assert metric(text, "modelroute_upstream_ejections_total") == 1
    assert gauge(text, "modelroute_upstream_healthy", provider="deepseek", region=EU) == 0


# --- hedging -----------------------------------------------------------------------


async def test_hedging_takes_the_fast_second_and_cancels_the_slow_first(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    slow = await make_sim(name="us", latency_ms=500)
    fast = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, slow), (EU, fast)]},
        resilience=resilience(hedging={"enabled": True, "after": "50ms"}),
    )
    router = await make_router(doc, region=US)

    answer = await call(http, router)
    assert answer.status == 200
    assert answer.region == EU
    assert answer.headers["x-sim-name"] == "eu"
    assert answer.elapsed < 0.4  # well before the slow upstream's 500 ms
    assert answer.json()["choices"][0]["message"]["content"] == FULL_ANSWER
    assert (chat_calls(slow), chat_calls(fast)) == (1, 1)
    await eventually(lambda: slow.stats.cancelled == 1 and slow.stats.in_flight == 0)
    assert slow.stats.completed == 0
    text = await scrape(http, router)
    assert metric(text, "modelroute_hedges_total") == 1
    # The loser was cancelled, not failed: no health penalty.
    state = (await status(http, router))[US]
    assert (state["state"], state["consecutiveFailures"], state["inFlight"]) == ("healthy", 0, 0)

    # Streams are never hedged.
    answer = await call(http, router, STREAM)
    assert (answer.status, answer.region) == (200, US)
    assert answer.elapsed >= 0.45
    text = await scrape(http, router)
    assert metric(text, "modelroute_hedges_total") == 1


async def test_no_hedge_when_the_first_answers_in_time(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    first = await make_sim(name="us")
    second = await make_sim(name="eu")
    doc = route_doc(
        {"deepseek": [(US, first), (EU, second)]},
        resilience=resilience(hedging={"enabled": True, "after": "2s"}),
    )
    router = await make_router(doc, region=US)
    for _ in range(3):
        answer = await call(http, router)
        assert (answer.status, answer.region, answer.attempts) == (200, US, 1)
    assert chat_calls(second) == 0
    assert metric(await scrape(http, router), "modelroute_hedges_total") == 0


# --- region outage under load ---------------------------------------------------------


async def test_region_outage_under_load(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    clients, kill_after, outage, run_after = 20, 1.0, 2.0, 2.0
    local = await make_sim(name="us", latency_ms=10)
    eu = await make_sim(name="eu", latency_ms=10)
    ap = await make_sim(name="ap", latency_ms=10)
    doc = route_doc(
        {"deepseek": [(US, local), (EU, eu), (AP, ap)]},
        regions=THREE_REGIONS,
        resilience=resilience(
            outlierDetection={
                "consecutiveErrors": 3,
                "baseEjectionTime": "1s",
                "maxEjectionTime": "2s",
            },
            healthCheck={
                "enabled": True,
                "interval": "200ms",
                "timeout": "200ms",
                "unhealthyThreshold": 2,
                "healthyThreshold": 2,
            },
        ),
    )
    router = await make_router(doc, region=US)
    url = f"{router.url}/chat/completions"

    answers: list[tuple[float, int, str]] = []  # (completed at, status, region)
    errors: list[str] = []
    states: list[tuple[float, str]] = []  # (seen at, state of the local endpoint)
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            try:
                async with http.post(url, json=CHAT) as resp:
                    await resp.read()
                    answers.append(
                        (monotonic(), resp.status, resp.headers.get("x-modelroute-region", ""))
                    )
            except (aiohttp.ClientError, OSError) as exc:
                errors.append(repr(exc))

    async def watch() -> None:
        while not stop.is_set():
            states.append((monotonic(), (await status(http, router))[US]["state"]))
            await asyncio.sleep(0.02)

    started = monotonic()
    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    tasks.append(asyncio.create_task(watch()))
    try:
        await asyncio.sleep(kill_after)
        killed_at = monotonic()
        await local.close()
        await asyncio.sleep(outage)
        restarted_at = monotonic()
        await local.start()
        await asyncio.sleep(run_after)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    ended = monotonic()

    failed = [a for a in answers if a[1] != 200]
    total = len(answers) + len(errors)

    def first(items: list[tuple[float, str]], after: float, pred: Any) -> float | None:
        return next((t - after for t, value in items if t >= after and pred(value)), None)

    by_region = [(t, region) for t, _, region in answers]
    failover = first(by_region, killed_at, lambda r: r != US)
    detected = first(states, killed_at, lambda s: s in ("ejected", "unhealthy"))
    recovered = first(by_region, restarted_at, lambda r: r == US)
    healthy_again = first(states, restarted_at, lambda s: s == "healthy")
    seen_states = sorted({s for t, s in states if t >= killed_at})

    def ms(value: float | None) -> str:
        return "never" if value is None else f"{value * 1000:.0f} ms"

    print(
        f"\nregion outage under load: {clients} clients, {total} requests in "
        f"{ended - started:.1f} s, {len(failed) + len(errors)} failed\n"
        f"  detection: kill -> first answer from another region {ms(failover)}; "
        f"kill -> local endpoint ejected/unhealthy in /status {ms(detected)}\n"
        f"  recovery: restart -> first answer from the local region {ms(recovered)}; "
        f"restart -> local endpoint healthy in /status {ms(healthy_again)}\n"
        f"  local endpoint states seen after the kill: {', '.join(seen_states)}"
    )
    assert not errors, errors[:5]
    assert not failed, failed[:5]
    assert total > clients * 10  # the load really ran
    assert failover is not None
    assert detected is not None and detected < outage
    assert recovered is not None
    assert healthy_again is not None
    # During the outage (once detected) every answer came from another region...
    assert all(region != US for t, region in by_region if killed_at + 0.1 < t < restarted_at)
    assert any(region == EU for _, region in by_region) or any(
        region == AP for _, region in by_region
    )
    # ...and after recovery traffic is back in the local region.
    tail = [region for t, region in by_region if t > restarted_at + recovered + 0.5]
    assert tail, "no answers after recovery"
    assert tail.count(US) / len(tail) > 0.95
    text = await scrape(http, router)
    assert metric(text, "modelroute_failovers_total", from_region=US) >= 1
    assert gauge(text, "modelroute_upstream_healthy", provider="deepseek", region=US) == 1
