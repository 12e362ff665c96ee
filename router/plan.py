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
Candidates are built once per routing table; a plan only orders them.
"""

from __future__ import annotations

import random

from modelroute.router.table import Candidate, Route

__all__ = ["Candidate", "panic_candidate", "plan", "two_choices"]


def two_choices(candidates: list[Candidate], rng: random.Random) -> list[Candidate]:
    """Order by repeated power-of-two-choices: of two random picks, the lower score first."""
    pool = list(candidates)
    ordered = []
    while len(pool) > 1:
        a, b = rng.sample(range(len(pool)), 2)
        score_a, score_b = pool[a].endpoint.health.score(), pool[b].endpoint.health.score()
        better = a if (score_a, rng.random()) <= (score_b, rng.random()) else b
        ordered.append(pool.pop(better))
    ordered.extend(pool)
    return ordered


def plan(route: Route, now: float, rng: random.Random) -> list[Candidate]:
    """Candidates for one request, most preferred first; each endpoint at most once."""
    candidates: list[Candidate] = []
    for local, remote in route.groups:
        for group in (local, remote):
            if len(group) == 1:  # the common case: one endpoint per provider and region
                health = group[0].endpoint.health
                if health.usable(now):
                    candidates.append(group[0])
                continue
            trials = []
            healthy = []
            for candidate in group:
                state = candidate.endpoint.health.state(now)
                if state == "healthy":
                    healthy.append(candidate)
                elif state == "half-open" and not candidate.endpoint.health.trial_in_flight:
                    trials.append(candidate)
            if len(healthy) > 1:
                healthy = two_choices(healthy, rng)
            candidates.extend(trials)
            candidates.extend(healthy)
    return candidates


def panic_candidate(route: Route) -> Candidate | None:
    """The endpoint that failed least recently, for when no endpoint is available."""
    best: Candidate | None = None
    for local, remote in route.groups:
        for candidate in local + remote:
            if best is None or candidate.endpoint.health.last_failure < best.endpoint.health.last_failure:
                best = candidate
    return best
