"""Scenario suite: a real router process, shipped defaults, many clients, failing upstreams.

Each scenario starts ``modelroute router`` as a subprocess over simulated
upstreams on loopback (:mod:`modelroute.router.sim`, in this process), runs
``CLIENTS`` concurrent clients against it, breaks an upstream the way
providers break, and counts at both ends: what every client got, and how many
completion requests each upstream received. The route uses the shipped
defaults except ``timeouts.firstToken`` (2 s instead of 30 s, so a stall
costs seconds, not half a minute).

What every scenario asserts: no client request failed (a stream cut after its
content started may end with an error event; those are counted apart), and
once the router has noticed the fault, upstream attempts per request stay at
or under 1.1. Each prints its figures (``pytest -s`` shows them):

    pytest -s tests/router/test_scenarios.py
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic
from typing import Any

import aiohttp
import pytest

from modelroute.router.sim import SimServer
from tests.router import scripted
from tests.router.conftest import SimFactory, route_doc, sse_events
from tests.router.scripted import Reply, ScriptedUpstream, response

CLIENTS = 20
FIRST_TOKEN = 2.0
US, EU = "us-east-1", "eu-west-1"
CHAT_PATH = "/v1/chat/completions"
CHAT = {"model": "chat-fast", "messages": [{"role": "user", "content": "Hello there"}]}
STREAM = {**CHAT, "stream": True}


def shipped_defaults(
    endpoints: dict[str, list[tuple[str, SimServer]]],
    models: dict[str, list[tuple[str, str]]] | None = None,
) -> dict[str, Any]:
    """A two-region route with every resilience default, only the first-token deadline shorter."""
    return route_doc(
        endpoints, models=models, resilience={"timeouts": {"firstToken": f"{FIRST_TOKEN:g}s"}}
    )


# --- the router process ------------------------------------------------------------


@dataclass
class Router:
    url: str  # the OpenAI base URL, .../v1
    admin: str
    http: aiohttp.ClientSession

    async def states(self) -> dict[str, str]:
        """Each endpoint's state from ``GET /status``, keyed ``provider/region``."""
        async with self.http.get(f"{self.admin}/status") as resp:
            doc = await resp.json()
        return {f"{e['provider']}/{e['region']}": e["state"] for e in doc["endpoints"]}

    async def wait_until(
        self, check: Callable[[dict[str, str]], bool], timeout: float = 10.0
    ) -> float:
        """Poll ``/status`` until ``check(states)`` holds; the time it first held."""
        async with asyncio.timeout(timeout):
            while not check(await self.states()):  # noqa: ASYNC110 (another process's state)
                await asyncio.sleep(0.02)
        return monotonic()


@contextlib.asynccontextmanager
async def router_process(
    tmp_path: Path, doc: dict[str, Any], http: aiohttp.ClientSession
) -> AsyncIterator[Router]:
    """``modelroute router`` in its own process, serving region us-east-1, until the block ends."""
    async with scripted.router_process(doc, tmp_path, region=US) as proc:
        yield Router(f"{proc.base}/v1", proc.base, http)


# --- the clients ---------------------------------------------------------------------


@dataclass
class Seen:
    """One request as its client saw it."""

    started: float
    ended: float
    status: int
    region: str
    provider: str
    attempts: int
    cut: bool = False  # a stream that ended with an error event after its content began
    error: str | None = None  # anything else that is not a complete answer
    tier: str = ""  # x-modelroute-tier, for tiered models
    degraded: str = ""  # x-modelroute-degraded

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class Load:
    """``CLIENTS`` clients sending requests back to back until stopped."""

    router: Router
    bodies: list[dict[str, Any]]  # client i sends bodies[i % len(bodies)]
    seen: list[Seen] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, clients: int = CLIENTS) -> None:
        loop = asyncio.get_running_loop()
        for i in range(clients):
            self._tasks.append(loop.create_task(self._client(self.bodies[i % len(self.bodies)])))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def __aenter__(self) -> Load:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _client(self, body: dict[str, Any]) -> None:
        url = f"{self.router.url}/chat/completions"
        while not self._stop.is_set():
            started = monotonic()
            try:
                async with asyncio.timeout(30), self.router.http.post(url, json=body) as resp:
                    raw = await resp.read()
                seen = Seen(
                    started,
                    monotonic(),
                    resp.status,
                    resp.headers.get("x-modelroute-region", ""),
                    resp.headers.get("x-modelroute-provider", ""),
                    int(resp.headers.get("x-modelroute-attempts", "0")),
                    tier=resp.headers.get("x-modelroute-tier", ""),
                    degraded=resp.headers.get("x-modelroute-degraded", ""),
                )
                if resp.status != 200:
                    seen.error = f"{resp.status}: {raw[:300]!r}"
                elif body.get("stream"):
                    events = sse_events(raw)
                    if any(isinstance(e, dict) and "error" in e for e in events):
                        seen.cut = True
                    elif not events or events[-1] != "[DONE]":
                        seen.error = "stream ended without [DONE]"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                seen = Seen(started, monotonic(), 0, "", "", 0, error=repr(exc))
            self.seen.append(seen)

    def failed(self) -> list[Seen]:
        return [s for s in self.seen if s.failed]


def calls(*sims: SimServer) -> int:
    """Completion requests the simulators received (health probes are not counted)."""
    return sum(sim.stats.by_path.get(CHAT_PATH, 0) for sim in sims)


@dataclass
class Window:
    """From a moment on: the requests clients started, the requests upstreams received."""

    since: float
    calls_then: int
    sims: list[SimServer]

    def attempts_per_request(self, load: Load) -> float:
        """Completion requests the upstreams got since ``since``, over the client requests
        started since then (a request sent just before still adds its attempts: strict)."""
        requests = sum(1 for s in load.seen if s.started >= self.since)
        assert requests > 0, "no requests in the window"
        return (calls(*self.sims) - self.calls_then) / requests


async def after_detection(sims: list[SimServer]) -> Window:
    """The window after the router noticed a fault, once the requests that met it are done
    (their retries, sent before, are part of detection)."""
    await asyncio.sleep(0.5)
    return Window(monotonic(), calls(*sims), sims)


def report(name: str, load: Load, **figures: Any) -> None:
    failed = load.failed()
    cut = sum(1 for s in load.seen if s.cut)
    parts = [f"{len(load.seen)} requests", f"{len(failed)} failed"]
    if cut:
        parts.append(f"{cut} streams cut after content")
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in figures.items()]
    print(f"\n[{name}] " + ", ".join(parts))
    for seen in failed[:5]:
        print(f"    failed: {seen.error}")


# --- scenarios -------------------------------------------------------------------------


async def test_a_target_failing_everywhere_falls_to_the_next_target(
    make_sim: SimFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The first target answers 503 in both regions; the second target is healthy."""
    ds_us = await make_sim(name="ds-us", latency_ms=20, fail_rate=1.0, fail_status=503)
    ds_eu = await make_sim(name="ds-eu", latency_ms=20, fail_rate=1.0, fail_status=503)
    glm_us = await make_sim(name="glm-us", latency_ms=20)
    glm_eu = await make_sim(name="glm-eu", latency_ms=20)
    sims = [ds_us, ds_eu, glm_us, glm_eu]
    doc = shipped_defaults(
        {"deepseek": [(US, ds_us), (EU, ds_eu)], "glm": [(US, glm_us), (EU, glm_eu)]},
        models={"chat-fast": [("deepseek", "upstream-model"), ("glm", "glm-4")]},
    )
    detected = None
    async with router_process(tmp_path, doc, http) as router:
        async with Load(router, [CHAT, STREAM]) as load:
            started = monotonic()
            with contextlib.suppress(TimeoutError):
                detected = await router.wait_until(
                    lambda s: "healthy" not in (s["deepseek/us-east-1"], s["deepseek/eu-west-1"]),
                    timeout=5,
                )
            window = await after_detection(sims)
            await asyncio.sleep(2.5)
        states = await router.states()
    ratio = window.attempts_per_request(load)
    report(
        "5xx in every region of the first target",
        load,
        detection_s="never" if detected is None else f"{detected - started:.2f}",
        attempts_per_request_after=f"{ratio:.3f}",
        deepseek_states=f"{states['deepseek/us-east-1']}/{states['deepseek/eu-west-1']}",
    )
    assert not load.failed()
    assert detected is not None
    assert ratio <= 1.1
    assert all(s.provider == "glm" for s in load.seen if s.started >= window.since)


async def test_a_killed_local_region_serves_again_within_2s_of_its_restart(
    make_sim: SimFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    local = await make_sim(name="us", latency_ms=20)
    remote = await make_sim(name="eu", latency_ms=20)
    doc = shipped_defaults({"deepseek": [(US, local), (EU, remote)]})
    async with (
        router_process(tmp_path, doc, http) as router,
        Load(router, [CHAT, STREAM]) as load,
    ):
        await asyncio.sleep(1.0)
        killed = monotonic()
        await local.close()
        detected = await router.wait_until(lambda s: s["deepseek/us-east-1"] != "healthy")
        window = await after_detection([local, remote])
        await asyncio.sleep(2.5)
        ratio = window.attempts_per_request(load)
        restarted = monotonic()
        await local.start()
        await asyncio.sleep(3.0)
    back = min(
        (s.ended for s in load.seen if s.region == US and s.started >= restarted), default=None
    )
    fail_back = None if back is None else back - restarted
    tail = [s.region for s in load.seen if s.started >= restarted + 2.5]
    report(
        "local region killed for 3 s and restarted",
        load,
        detection_s=f"{detected - killed:.2f}",
        attempts_per_request_during_outage=f"{ratio:.3f}",
        restart_to_first_local_answer_s="never" if fail_back is None else f"{fail_back:.2f}",
        local_share_after=f"{tail.count(US)}/{len(tail)}",
    )
    assert not load.failed()
    assert ratio <= 1.1
    assert fail_back is not None and fail_back <= 2.0
    assert tail and tail.count(US) / len(tail) > 0.9


@pytest.mark.parametrize("body", [CHAT, STREAM], ids=["non-streaming", "streaming"])
async def test_a_stall_before_the_first_byte_costs_one_deadline(
    body: dict[str, Any], make_sim: SimFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    stalled = await make_sim(name="us", stall=True)
    healthy = await make_sim(name="eu", latency_ms=20)
    doc = shipped_defaults({"deepseek": [(US, stalled), (EU, healthy)]})
    async with (
        router_process(tmp_path, doc, http) as router,
        Load(router, [body]) as load,
    ):
        started = monotonic()
        detected = await router.wait_until(lambda s: s["deepseek/us-east-1"] == "ejected")
        window = await after_detection([stalled, healthy])
        await asyncio.sleep(1.5)
    ratio = window.attempts_per_request(load)
    slowest = max(s.ended - s.started for s in load.seen)
    stalled_requests = sum(1 for s in load.seen if s.attempts > 1)
    report(
        f"stall before the first byte ({'streaming' if body.get('stream') else 'non-streaming'})",
        load,
        requests_that_met_the_stall=stalled_requests,
        slowest_request_s=f"{slowest:.2f}",
        detection_s=f"{detected - started:.2f}",
        attempts_per_request_after=f"{ratio:.3f}",
    )
    assert not load.failed()
    assert stalled_requests >= 1
    assert slowest < FIRST_TOKEN + 1.0  # one deadline, then an answer from the other region
    assert ratio <= 1.1


async def test_an_endpoint_dying_mid_stream_is_ejected(
    make_sim: SimFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    dying = await make_sim(name="us", tokens=16, token_delay_ms=10, die_after_tokens=3)
    healthy = await make_sim(name="eu", tokens=16, token_delay_ms=10)
    doc = shipped_defaults({"deepseek": [(US, dying), (EU, healthy)]})
    async with router_process(tmp_path, doc, http) as router:
        async with Load(router, [STREAM]) as load:
            started = monotonic()
            detected = await router.wait_until(lambda s: s["deepseek/us-east-1"] == "ejected")
            window = await after_detection([dying, healthy])
            await asyncio.sleep(2.5)
        state = (await router.states())["deepseek/us-east-1"]
    ratio = window.attempts_per_request(load)
    cut_before = sum(1 for s in load.seen if s.cut and s.started < detected)
    cut_after = sum(1 for s in load.seen if s.cut and s.started >= detected)
    report(
        "endpoint dies mid-stream",
        load,
        detection_s=f"{detected - started:.2f}",
        cut_before_detection=cut_before,
        cut_after_detection=cut_after,
        attempts_per_request_after=f"{ratio:.3f}",
    )
    assert not load.failed()
    assert cut_before >= 1
    # Once ejected, only a half-open trial (one per probe-ended ejection) may meet it again.
    assert cut_after <= 2
    assert state in ("ejected", "half-open")
    assert ratio <= 1.1


async def test_a_429_burst_counts_once_and_the_trial_comes_when_retry_after_ends(
    make_sim: SimFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    limited = await make_sim(
        name="us", latency_ms=200, fail_rate=1.0, fail_status=429, retry_after=5
    )
    other = await make_sim(name="eu", latency_ms=20)
    doc = shipped_defaults({"deepseek": [(US, limited), (EU, other)]})
    arrivals: list[tuple[float, int]] = []  # (seen at, completion requests so far)

    async def watch() -> None:
        while True:
            count = calls(limited)
            if not arrivals or arrivals[-1][1] != count:
                arrivals.append((monotonic(), count))
            await asyncio.sleep(0.005)

    async with router_process(tmp_path, doc, http) as router:
        watcher = asyncio.create_task(watch())
        async with Load(router, [CHAT, STREAM]) as load:
            # The first answers (all 429) mark the start of the cooldown.
            async with asyncio.timeout(5):
                while limited.stats.completed == 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            first_429 = monotonic()
            burst = calls(limited)
            await asyncio.sleep(2.0)
            limited.behaviour.update({"fail_rate": 0.0})  # the quota is back; the trial will tell
            await asyncio.sleep(5.0)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    inside = [count for at, count in arrivals if first_429 + 0.25 < at < first_429 + 4.8]
    trial_at = next((at for at, count in arrivals if count > burst), None)
    trial = None if trial_at is None else trial_at - first_429
    back = [s for s in load.seen if s.region == US and s.started > first_429 + 1]
    report(
        "429 with Retry-After: 5 to a burst",
        load,
        requests_in_the_burst=burst,
        reached_it_inside_the_window=max(inside, default=burst) - burst,
        trial_after_s="never" if trial is None else f"{trial:.2f}",
        answers_from_it_after_the_trial=len(back),
    )
    assert not load.failed()
    assert burst <= CLIENTS  # at most the requests already in flight
    assert all(count == burst for count in inside)  # nothing else inside the window
    assert trial is not None and 4.8 <= trial <= 6.0
    assert back  # the trial succeeded and the endpoint serves again


async def test_html_502_pages_fall_to_the_next_target(
    make_sim: SimFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The first target sits behind a load balancer that answers HTML 502 pages."""
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    html = response(502, page, headers={"Content-Type": "text/html"})
    lb_us = await ScriptedUpstream(lambda n, request: Reply(html)).start()
    lb_eu = await ScriptedUpstream(lambda n, request: Reply(html)).start()
    glm_us = await make_sim(name="glm-us", latency_ms=20)
    glm_eu = await make_sim(name="glm-eu", latency_ms=20)
    doc = shipped_defaults(
        {"deepseek": [(US, glm_us), (EU, glm_eu)], "glm": [(US, glm_us), (EU, glm_eu)]},
        models={"chat-fast": [("deepseek", "upstream-model"), ("glm", "glm-4")]},
    )
    endpoints = doc["spec"]["providers"][0]["endpoints"]
    endpoints[0]["baseURL"], endpoints[1]["baseURL"] = lb_us.url, lb_eu.url
    try:
        async with (
            router_process(tmp_path, doc, http) as router,
            Load(router, [CHAT, STREAM]) as load,
        ):
            await router.wait_until(
                lambda s: "healthy" not in (s["deepseek/us-east-1"], s["deepseek/eu-west-1"]),
                timeout=5,
            )
            await asyncio.sleep(0.5)
            since, sent = monotonic(), len(lb_us.requests) + len(lb_eu.requests)
            glm_then = calls(glm_us, glm_eu)
            await asyncio.sleep(2.0)
    finally:
        await lb_us.close()
        await lb_eu.close()
    after = sum(1 for s in load.seen if s.started >= since)
    upstream = len(lb_us.requests) + len(lb_eu.requests) - sent + calls(glm_us, glm_eu) - glm_then
    report("HTML 502 pages", load, attempts_per_request_after=f"{upstream / after:.3f}")
    assert not load.failed()
    assert upstream / after <= 1.1


HARD = {
    "model": "auto",
    "messages": [
        {
            "role": "user",
            "content": "Design a sharded, replicated rate limiter for 2M req/s across three "
            "regions and prove that no tenant can exceed its quota by more than 1%.",
        }
    ],
}
SIMPLE = {
    "model": "auto",
    "messages": [{"role": "user", "content": "What is the capital of Peru?"}],
}


async def test_a_premium_outage_degrades_to_standard_and_comes_back(
    make_sim: SimFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A tiered model; the premium provider dies in both regions under load, then returns."""
    sims = {name: await make_sim(name=name, latency_ms=20) for name in (
        "flash-us", "flash-eu", "pro-us", "pro-eu", "gpt-us", "gpt-eu"
    )}  # fmt: skip
    doc = shipped_defaults(
        {
            "deepseek": [(US, sims["flash-us"]), (EU, sims["flash-eu"])],
            "deepseek-pro": [(US, sims["pro-us"]), (EU, sims["pro-eu"])],
            "openai": [(US, sims["gpt-us"]), (EU, sims["gpt-eu"])],
        },
        models={
            "flash": [("deepseek", "flash")],
            "pro": [("deepseek-pro", "pro")],
            "premium": [("openai", "gpt-4o")],
        },
    )
    doc["spec"]["models"].append(
        {"name": "auto", "tiers": {"economy": "flash", "standard": "pro", "premium": "premium"}}
    )
    async with (
        router_process(tmp_path, doc, http) as router,
        Load(router, [HARD, SIMPLE, STREAM | {"model": "auto"}]) as load,
    ):
        await asyncio.sleep(1.0)
        killed = monotonic()
        await sims["gpt-us"].close()
        await sims["gpt-eu"].close()
        await router.wait_until(
            lambda s: "healthy" not in (s["openai/us-east-1"], s["openai/eu-west-1"])
        )
        detected = monotonic()
        await asyncio.sleep(2.0)
        restarted = monotonic()
        await sims["gpt-us"].start()
        await sims["gpt-eu"].start()
        await asyncio.sleep(3.0)
    premium = [s for s in load.seen if s.tier == "premium"]
    during = [s for s in premium if detected + 0.5 <= s.started and s.ended < restarted]
    after = [s for s in premium if s.started >= restarted + 2.0]
    report(
        "premium outage under a tiered model",
        load,
        detection_s=f"{detected - killed:.2f}",
        premium_requests_during=len(during),
        degraded_during=sum(1 for s in during if s.degraded == "premium->standard"),
        premium_served_after=sum(1 for s in after if s.provider == "openai"),
        of_after=len(after),
    )
    assert not load.failed()
    odd = [s for s in during if s.degraded != "premium->standard"]
    assert during and not odd, odd[:3]
    assert all(s.provider == "deepseek-pro" for s in during)
    assert max(s.attempts for s in during) == 1  # no attempts wasted on the dead tier
    assert after and all(s.provider == "openai" and not s.degraded for s in after)
    assert any(s.tier == "economy" and s.provider == "deepseek" for s in load.seen)
