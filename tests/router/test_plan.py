"""Which candidates a request tries, in which order: pure, no sockets."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from modelroute.router.health import EndpointHealth
from modelroute.router.metrics import Metrics
from modelroute.router.plan import Candidate, panic_candidate, plan
from modelroute.router.table import Endpoint, Route, RoutingTable, build_table
from modelroute.spec import parse_route
from modelroute.spec.model import OutlierDetection
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


def eject(endpoint: Endpoint, now: float = 0.0) -> None:
    endpoint.health.failed(now, "5xx", OUTLIER, True)


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


def test_panic_candidate_is_the_least_recently_failed() -> None:
    route = table("us").routes["chat"]
    for i, endpoint in enumerate(by_url(route).values()):
        endpoint.health.failed(float(10 + i), "5xx", OUTLIER, True)
    assert plan(route, 11.0, random.Random(1)) == []
    panic = panic_candidate(route)
    assert panic is not None
    assert panic.endpoint.health.last_failure == 10.0


health_states = st.sampled_from(["healthy", "ejected", "cooling", "half-open", "trial", "unhealthy"])


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
    # The chain order holds, and within a target the own region comes first.
    assert [c.index for c in candidates] == sorted(c.index for c in candidates)
    for index in {c.index for c in candidates}:
        local = [c.endpoint.local for c in candidates if c.index == index]
        assert local == sorted(local, reverse=True)
    # An out-of-service endpoint is never first while a healthy one exists.
    if any(e.health.state(now) == "healthy" for e in endpoints):
        assert candidates and candidates[0].endpoint.health.usable(now)
    # Panic mode always has someone to try.
    assert panic_candidate(route) is not None
