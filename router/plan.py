"""Which upstreams a request tries, in which order, and whether to stay on a target.

The model's fallback chain is a list of priority levels (Envoy's priorities):
each target's endpoints are one level, tried before the next target's. Within
a target, the endpoints in the router's own region come first, then the other
regions; within each of those groups, endpoints whose ejection or cooldown
just ended come first (each admits one trial request, so a recovered region
gets its traffic back), then healthy ones ordered by power-of-two-choices on
a load-weighted latency EWMA.

A target with no healthy endpoint left spills to the next target at once:
ejected, cooling and probe-failed endpoints are left out, and *degraded* ones
(failing, but kept in service by ``maxEjectionPercent``) go to the very end
of the plan, behind every healthy candidate of every later target — still
tried when nothing else is left, never in front of a target that can answer.
When the plan is empty, :func:`panic_candidate` names the least recently
failed endpoint rather than failing closed (Envoy's panic mode).

:func:`same_target_wait` decides, after a failure, whether the target that
failed gets one more quick attempt before the chain moves on.

All of it is a pure function of the route, the endpoints' health and ``now``
(plus a random source for the two choices), so it is tested without sockets.
Candidates are built once per routing table; a plan only orders them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from modelroute.router.errors import AttemptFailed, RateLimited
from modelroute.router.health import EndpointHealth
from modelroute.router.table import Candidate, Route

__all__ = [
    "Candidate",
    "CandidateQueue",
    "panic_candidate",
    "plan",
    "same_target_wait",
    "two_choices",
]


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
    degraded: list[Candidate] = []
    for local, remote in route.groups:
        for group in (local, remote):
            if len(group) == 1:  # the common case: one endpoint per provider and region
                health = group[0].endpoint.health
                state = health.state(now)
                if state == "healthy" or (state == "half-open" and not health.trial_in_flight):
                    candidates.append(group[0])
                elif state == "degraded":
                    degraded.append(group[0])
                continue
            trials = []
            healthy = []
            for candidate in group:
                health = candidate.endpoint.health
                state = health.state(now)
                if state == "healthy":
                    healthy.append(candidate)
                elif state == "half-open" and not health.trial_in_flight:
                    trials.append(candidate)
                elif state == "degraded":
                    degraded.append(candidate)
            if len(healthy) > 1:
                healthy = two_choices(healthy, rng)
            candidates.extend(trials)
            candidates.extend(healthy)
    candidates.extend(degraded)
    return candidates


def panic_candidate(route: Route) -> Candidate | None:
    """The endpoint that failed least recently, for when no endpoint is available."""
    best: Candidate | None = None
    for local, remote in route.groups:
        for candidate in local + remote:
            if best is None or candidate.endpoint.health.last_failure < best.endpoint.health.last_failure:
                best = candidate
    return best


def same_target_wait(
    failure: AttemptFailed, health: EndpointHealth, now: float, limit: float
) -> float | None:
    """After ``failure`` on an endpoint, the time until it may be tried once more
    before the chain moves to the next target (0: after the usual retry backoff);
    None to move on at once.

    Worth it only after a transient failure: a 5xx from an endpoint still in service,
    or a first 429 whose cooldown (its Retry-After) ends within ``limit``. A timeout
    already cost a deadline, a refused or reset connection says the endpoint is down,
    and an ejected, degraded or repeatedly rate-limited endpoint is known to be down.
    """
    if limit <= 0:
        return None
    state = health.state(now)
    if isinstance(failure, RateLimited):
        wait = health.cooldown_until - now
        if state != "cooling" or health.cooldown_repeated or wait > limit:
            return None
        return wait
    if failure.reason == "5xx" and state == "healthy":
        return 0.0
    return None


class CandidateQueue(Iterator[Candidate]):
    """A plan being worked through; the attempt loop may put a candidate back in front."""

    __slots__ = ("_front", "_rest")

    def __init__(self, candidates: Iterable[Candidate]) -> None:
        self._rest = iter(candidates)
        self._front: list[Candidate] = []

    def __next__(self) -> Candidate:
        if self._front:
            return self._front.pop()
        return next(self._rest)

    def peek(self) -> Candidate | None:
        """The next candidate, left in the queue; None at the end."""
        if not self._front:
            nxt = next(self._rest, None)
            if nxt is None:
                return None
            self._front.append(nxt)
        return self._front[-1]

    def push(self, candidate: Candidate) -> None:
        """Make ``candidate`` the next one."""
        self._front.append(candidate)
