"""Which upstreams a request tries, in which order.

The plan walks the model's fallback chain in order and, for each target,
that provider's endpoints nearest first (the router's own region, then the
others). It is a pure function of its inputs, so its rules are tested without
sockets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from modelroute.router.table import Endpoint, Route, Target


@dataclass(frozen=True, slots=True)
class Candidate:
    target: Target
    endpoint: Endpoint


def plan(route: Route) -> Iterator[Candidate]:
    """Candidates for one request, most preferred first."""
    for target in route.targets:
        for endpoint in target.endpoints:
            yield Candidate(target, endpoint)
