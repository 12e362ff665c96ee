"""API load at scale: 100 routes, measured against the test API server.

Converged routes cost the API server nothing per route: the operator reads
from watch-fed caches, a resync walks every route from them, and status is
written only when it changes. What remains is per cluster, not per route: the
leader renewing its Lease (a GET and a PUT every 5 s) and each of the seven
watches being renewed when the server ends it (every 5 min on a real server;
the test server never ends one, so the figure adds it by arithmetic).

Run it alone to see the figures:

    .venv/bin/python -m pytest tests/operator/test_steady_state_load.py -q -s
"""

from __future__ import annotations

import asyncio
import time

from modelroute.operator.kube import Kube
from modelroute.operator.settings import Timing
from tests.operator.apiserver import ApiServer
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    DEPLOYMENTS,
    LEASES,
    MARK,
    ROUTES,
    eventually,
    names,
    running_operator,
    seed_route,
    seed_secrets,
    settings,
    status,
)

pytestmark = MARK
ROUTE_COUNT = 100
WINDOW = 10.0  # seconds of steady state measured
RESYNC = 5.0  # every route re-checked twice in the window


def by_operator(cluster: ApiServer) -> list[object]:
    return [r for r in cluster if "modelroute-operator" in r.headers.get("User-Agent", "")]


async def test_steady_state_requests_per_route_per_minute(cluster: ApiServer) -> None:
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    for number in range(ROUTE_COUNT):
        await seed_route(cluster, minimal_route(f"route-{number:03d}"))
    production = Timing()  # the Lease renewed every 5 s, as in a cluster
    started = time.monotonic()
    async with running_operator(
        settings(leader_timing=production, resync_seconds=RESYNC, workers=4)
    ):

        def converged() -> bool:
            """every route applied and reporting"""
            return all(
                status(cluster, f"route-{n:03d}").get("readyRegions") == "0/2"
                for n in range(ROUTE_COUNT)
            )

        await eventually(converged, timeout=120)
        converge_requests = len(by_operator(cluster))
        converge_seconds = time.monotonic() - started
        assert len(names(cluster, DEPLOYMENTS)) == 2 * ROUTE_COUNT

        await asyncio.sleep(1.0)  # the last status writes' watch events settle
        before = by_operator(cluster)
        await asyncio.sleep(WINDOW)
        during = by_operator(cluster)[len(before) :]

    leases = [r for r in during if getattr(r, "resource", None) == LEASES]
    per_route = [r for r in during if getattr(r, "resource", None) != LEASES]
    per_minute = 60.0 / WINDOW
    watch_renewals = 7 * 60.0 / Kube.WATCH_SECONDS  # seven kinds, renewed every 5 min
    total = (len(during) * per_minute + watch_renewals) / ROUTE_COUNT
    print(
        f"\n{ROUTE_COUNT} routes converged with {converge_requests} requests "
        f"in {converge_seconds:.1f}s; steady state over {WINDOW:.0f}s "
        f"(every route resynced {WINDOW / RESYNC:.0f} times): "
        f"{len(per_route)} requests for routes, {len(leases)} for the Lease; "
        f"{len(per_route) * per_minute / ROUTE_COUNT:.3f} requests per route per minute "
        f"from routes, {total:.3f} with the Lease and watch renewals shared out"
    )
    assert per_route == []  # nothing per route: no polling, no drift, no status churn
    assert len(leases) <= 2 * (WINDOW / production.retry_period + 1)
    assert total < 0.5
    assert names(cluster, ROUTES) and names(cluster, LEASES, "modelroute-system")
