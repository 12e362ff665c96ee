"""Which candidates a request tries, in which order: pure, no sockets."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from modelroute.router.errors import (
    ConnectFailed,
    RateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from modelroute.router.health import EndpointHealth
from modelroute.router.metrics import Metrics
from modelroute.router.plan import (
    Candidate,
    CandidateQueue,
    panic_candidate,
    plan,
    same_target_wait,
)
from modelroute.router.table import Endpoint, Route, RoutingTable, build_table
from modelroute.spec import parse_route
from modelroute.spec.model import OutlierDetection, RateLimit
from modelroute.spec.schema import Duration

OUTLIER = OutlierDetection(
    consecutive_errors=1, base_ejection_time=Duration(30.0), max_ejection_time=Duration(300.0), max_ejection_percent=100
)


def table(region: str = "us") -> RoutingTable:
    doc = {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "t"},
        "spec": {
            "regions": [{"name": "us"}, {"name": "eu"}, {"name": "ap"}],
            "providers": [
                {
                    "name": "ds",
                    "endpoints": [
                        {"region": "eu", "baseURL": "http://eu.ds/v1"},
                        {"region": "us", "baseURL": "http://us1.ds/v1"},
                        {"region": "us", "baseURL": "http://us2.ds/v1"},
                        {"region": "ap", "baseURL": "http://ap.ds/v1"},
                    ],
                },
                {"name": "glm", "endpoints": [{"region": "us", "baseURL": "http://us.glm/v1"}]},
            ],
            "models": [
                {
                    "name": "chat",
                    "targets": [{"provider": "ds", "model": "v4"}, {"provider": "glm", "model": "g4"}],
                }
            ],
        },
    }
    built = build_table(parse_route(doc), region, Path("/nonexistent"), Metrics())
    for endpoint in built.endpoints:
        endpoint.health = EndpointHealth(endpoint.key, endpoint.provider, endpoint.region)
    return built


def urls(candidates: list[Candidate]) -> list[str]:
    return [c.endpoint.base_url for c in candidates]


def by_url(route: Route) -> dict[str, Endpoint]:
    return {e.base_url: e for t in route.targets for e in t.endpoints}


def eject(endpoint: Endpoint, now: float = 0.0, may_eject: bool = True) -> None:
    """Eject ``endpoint`` (or, past the ejection cap, degrade it)."""
    health = endpoint.health
    admission = health.admit(now)
    health.failed(now, "5xx", OUTLIER, may_eject, admission)
    health.done(admission)


def test_own_region_first_then_other_regions_then_the_next_target() -> None:
    route = table("us").routes["chat"]
    order = urls(plan(route, 0.0, random.Random(1)))
    assert set(order[:2]) == {"http://us1.ds/v1", "http://us2.ds/v1"}
    assert set(order[2:4]) == {"http://eu.ds/v1", "http://ap.ds/v1"}
    assert order[4:] == ["http://us.glm/v1"]
    assert [c.index for c in plan(route, 0.0, random.Random(1))] == [0, 0, 0, 0, 1]


def test_ejected_and_cooling_endpoints_are_left_out() -> None:
    route = table("us").routes["chat"]
    endpoints = by_url(route)
    eject(endpoints["http://us1.ds/v1"])
    endpoints["http://eu.ds/v1"].health.cooldown_until = 100.0
    order = urls(plan(route, 1.0, random.Random(1)))
    assert "http://us1.ds/v1" not in order and "http://eu.ds/v1" not in order
    assert order[0] == "http://us2.ds/v1"


def test_an_endpoint_back_from_ejection_gets_its_trial_before_healthy_peers() -> None:
    route = table("eu").routes["chat"]
    endpoints = by_url(route)
    eject(endpoints["http://eu.ds/v1"], now=0.0)
    assert urls(plan(route, 10.0, random.Random(1)))[0] != "http://eu.ds/v1"
    # After the ejection the local endpoint is half-open: first in line, for one request.
    assert urls(plan(route, 31.0, random.Random(1)))[0] == "http://eu.ds/v1"
    assert endpoints["http://eu.ds/v1"].health.admit(31.0)
    assert "http://eu.ds/v1" not in urls(plan(route, 31.0, random.Random(1)))


def test_two_choices_prefer_the_faster_less_loaded_endpoint() -> None:
    route = table("us").routes["chat"]
    endpoints = by_url(route)
    endpoints["http://us1.ds/v1"].health.ewma = 0.100
    endpoints["http://us2.ds/v1"].health.ewma = 0.020
    rng = random.Random(7)
    firsts = Counter(urls(plan(route, 0.0, rng))[0] for _ in range(200))
    assert firsts["http://us2.ds/v1"] == 200  # of two, the lower score always wins
    endpoints["http://us2.ds/v1"].health.in_flight = 9  # 0.02 x 10 > 0.1 x 1
    assert urls(plan(route, 0.0, rng))[0] == "http://us1.ds/v1"


def test_a_target_with_no_healthy_endpoint_spills_to_the_next_target() -> None:
    route = table("us").routes["chat"]
    endpoints = by_url(route)
    for url in ("http://us1.ds/v1", "http://us2.ds/v1", "http://eu.ds/v1"):
        eject(endpoints[url], 0.0)
    eject(endpoints["http://ap.ds/v1"], 0.0, may_eject=False)  # past the ejection cap
    assert endpoints["http://ap.ds/v1"].health.state(1.0) == "degraded"
    # The failing target's last endpoint no longer stands in front of the next target:
    # it is tried last, and only because the chain would otherwise have nothing left.
    assert urls(plan(route, 1.0, random.Random(1))) == ["http://us.glm/v1", "http://ap.ds/v1"]


def test_degraded_endpoints_keep_chain_and_locality_order_at_the_end() -> None:
    route = table("us").routes["chat"]
    endpoints = by_url(route)
    eject(endpoints["http://eu.ds/v1"], 0.0, may_eject=False)
    eject(endpoints["http://us.glm/v1"], 0.0, may_eject=False)
    eject(endpoints["http://us1.ds/v1"], 0.0, may_eject=False)
    order = urls(plan(route, 1.0, random.Random(1)))
    assert order[:2] == ["http://us2.ds/v1", "http://ap.ds/v1"]
    assert order[2:] == ["http://us1.ds/v1", "http://eu.ds/v1", "http://us.glm/v1"]


def test_same_target_wait_only_after_a_transient_failure() -> None:
    limits = RateLimit(default_cooldown=Duration(1.0), max_cooldown=Duration(60.0))
    fresh = EndpointHealth("k", "p", "r")
    failure_5xx = UpstreamServerError(503, [], b"")
    assert same_target_wait(failure_5xx, fresh, 0.0, 2.0) == 0.0  # a one-off 5xx: try again
    assert same_target_wait(failure_5xx, fresh, 0.0, 0.0) is None  # sameTargetWait: 0s
    assert same_target_wait(UpstreamTimeout("slow"), fresh, 0.0, 2.0) is None
    assert same_target_wait(ConnectFailed("refused"), fresh, 0.0, 2.0) is None
    ejected = EndpointHealth("k", "p", "r")
    ejected.failed(0.0, "5xx", OUTLIER, True, ejected.admit(0.0))
    assert same_target_wait(failure_5xx, ejected, 0.0, 2.0) is None  # known down
    degraded = EndpointHealth("k", "p", "r")
    degraded.failed(0.0, "5xx", OUTLIER, False, degraded.admit(0.0))
    assert same_target_wait(failure_5xx, degraded, 0.0, 2.0) is None

    def limited(retry_after: float) -> tuple[RateLimited, EndpointHealth]:
        health = EndpointHealth("k", "p", "r")
        health.rate_limited(0.0, retry_after, limits, health.admit(0.0))
        return RateLimited(429, [], b"", retry_after), health

    assert same_target_wait(*limited(1.5), 0.0, 2.0) == 1.5  # a short Retry-After: wait
    assert same_target_wait(*limited(5.0), 0.0, 2.0) is None  # a long one: move on
    failure, health = limited(1.0)
    trial = health.admit(1.0)
    health.rate_limited(1.0, 1.0, limits, trial)  # its trial is limited again: doubled
    assert same_target_wait(failure, health, 1.0, 2.0) is None


def test_candidate_queue_peeks_and_takes_back() -> None:
    route = table("us").routes["chat"]
    candidates = plan(route, 0.0, random.Random(1))
    queue = CandidateQueue(candidates)
    first = next(queue)
    assert queue.peek() is candidates[1]
    queue.push(first)
    assert list(queue) == candidates
    assert queue.peek() is None


def test_panic_candidate_is_the_least_recently_failed() -> None:
    route = table("us").routes["chat"]
    for i, endpoint in enumerate(by_url(route).values()):
        eject(endpoint, float(10 + i))
    assert plan(route, 11.0, random.Random(1)) == []
    panic = panic_candidate(route)
    assert panic is not None
    assert panic.endpoint.health.last_failure == 10.0


health_states = st.sampled_from(
    ["healthy", "ejected", "degraded", "cooling", "half-open", "trial", "unhealthy"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(health_states, min_size=5, max_size=5), st.sampled_from(["us", "eu", "ap"]), st.integers(0, 99))
def test_plan_properties(states: list[str], region: str, seed: int) -> None:
    route = table(region).routes["chat"]
    endpoints = [e for t in route.targets for e in t.endpoints]
    now = 50.0
    for endpoint, state in zip(endpoints, states, strict=True):
        h = endpoint.health
        if state == "ejected":
            h.ejected_until, h.half_open = now + 10, True
        elif state == "degraded":
            h.ejected_until, h.half_open, h.degraded = now + 10, True, True
        elif state == "cooling":
            h.cooldown_until, h.half_open = now + 10, True
        elif state in ("half-open", "trial"):
            h.half_open = True
            h.trial_in_flight = state == "trial"
        elif state == "unhealthy":
            h.probe_unhealthy = True
    candidates = plan(route, now, random.Random(seed))
    chosen = [c.endpoint for c in candidates]
    # Each endpoint at most once.
    assert len(chosen) == len({id(e) for e in chosen})
    # Never an endpoint that is out of service.
    assert all(e.health.usable(now) for e in chosen)
    # Every usable endpoint is in the plan.
    assert {id(e) for e in endpoints if e.health.usable(now)} == {id(e) for e in chosen}
    # A degraded (or ejected) endpoint never precedes a healthy candidate of a later
    # target: degraded ones come after every other candidate.
    kinds = [c.endpoint.health.state(now) == "degraded" for c in candidates]
    assert kinds == sorted(kinds)
    in_service = [c for c, degraded in zip(candidates, kinds, strict=True) if not degraded]
    last_resort = [c for c, degraded in zip(candidates, kinds, strict=True) if degraded]
    # The chain order holds, and within a target the own region comes first
    # (among the candidates in service, and among the degraded ones).
    for part in (in_service, last_resort):
        assert [c.index for c in part] == sorted(c.index for c in part)
        for index in {c.index for c in part}:
            local = [c.endpoint.local for c in part if c.index == index]
            assert local == sorted(local, reverse=True)
    # An out-of-service endpoint is never first while a healthy one exists.
    if any(e.health.state(now) == "healthy" for e in endpoints):
        assert candidates and candidates[0].endpoint.health.state(now) in ("healthy", "half-open")
    # Panic mode always has someone to try.
    assert panic_candidate(route) is not None
