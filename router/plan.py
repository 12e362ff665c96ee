"""Which upstreams a request tries, in which order.

For each target of the model's fallback chain, in chain order: that
provider's endpoints in the router's own region, then in the other regions.
Within each group, endpoints whose ejection or cooldown just ran out come
first (each admits one trial request, so a recovered region gets its traffic
back), then healthy ones ordered by power-of-two-choices on a load-weighted
latency EWMA. Ejected, cooling and probe-failed endpoints are left out; when
that leaves nothing, :func:`panic_candidate` names the least recently failed
endpoint rather than failing closed (Envoy's panic mode).

The plan is a pure function of the route, the endpoints' health and ``now``
(plus a random source for the two choices), so it is tested without sockets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from modelroute.router.table import Endpoint, Route, Target


@dataclass(frozen=True, slots=True)
class Candidate:
    target: Target
    endpoint: Endpoint
    index: int  # position of the target in the chain (0: the first choice)


def two_choices(endpoints: list[Endpoint], rng: random.Random) -> list[Endpoint]:
    """Order by repeated power-of-two-choices: of two random picks, the lower score first."""
    pool = list(endpoints)
    ordered = []
    while len(pool) > 1:
        a, b = rng.sample(range(len(pool)), 2)
        first, second = pool[a], pool[b]
        better = (
            a
            if (first.health.score(), rng.random()) <= (second.health.score(), rng.random())
            else b
        )
        ordered.append(pool.pop(better))
    ordered.extend(pool)
    return ordered


def plan(route: Route, now: float, rng: random.Random) -> list[Candidate]:
    """Candidates for one request, most preferred first; each endpoint at most once."""
    candidates: list[Candidate] = []
    for index, target in enumerate(route.targets):
        for group in (target.local, target.remote):
            if not group:
                continue
            trials = []
            healthy = []
            for endpoint in group:
                state = endpoint.health.state(now)
                if state == "healthy":
                    healthy.append(endpoint)
                elif state == "half-open" and not endpoint.health.trial_in_flight:
                    trials.append(endpoint)
            if len(healthy) > 1:
                healthy = two_choices(healthy, rng)
            candidates.extend(Candidate(target, endpoint, index) for endpoint in trials + healthy)
    return candidates


def panic_candidate(route: Route) -> Candidate | None:
    """The endpoint that failed least recently, for when no endpoint is available."""
    best: Candidate | None = None
    for index, target in enumerate(route.targets):
        for endpoint in target.endpoints:
            if best is None or endpoint.health.last_failure < best.endpoint.health.last_failure:
                best = Candidate(target, endpoint, index)
    return best
