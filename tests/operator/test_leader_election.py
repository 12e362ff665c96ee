"""Two operator replicas: only the Lease holder writes; a standby takes over.

The replicas run in this process against the test API server, each with its
own identity (and User-Agent, by which requests are told apart). Timing is
shortened (lease 3 s, renew deadline 2 s, retry 0.2 s); the order of the
guarantees is the production one.
"""

from __future__ import annotations

import asyncio
import contextlib

import kmock

from tests.operator.apiserver import ApiServer, Fault
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    DEPLOYMENTS,
    HPAS,
    LEASES,
    MARK,
    OPERATOR_NS,
    ROUTES,
    api,
    condition,
    eventually,
    live,
    names,
    route_path,
    running_operator,
    seed_route,
    seed_secrets,
    settings,
    writes,
)

pytestmark = MARK


def holder(cluster: ApiServer) -> str:
    lease = live(cluster, LEASES, "modelroute-operator", namespace=OPERATOR_NS) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def non_lease(requests: list[kmock.Request]) -> list[kmock.Request]:
    return [r for r in requests if r.resource != LEASES]


async def test_only_the_leader_writes_and_a_standby_takes_over(cluster: ApiServer) -> None:
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    await seed_route(cluster, minimal_route())
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_operator(settings("op-a")))
        b = await stack.enter_async_context(running_operator(settings("op-b"), wait_leading=False))
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        await api(cluster, "PATCH", route_path(), {"spec": {"autoscaling": {"minReplicas": 3}}})
        await eventually(lambda: status_generation(cluster) == 2)
        await asyncio.sleep(0.5)

        assert holder(cluster) == "op-a"
        assert (a.elector.leading, b.elector.leading) == (True, False)
        assert b.controller is None and b.ready() == (True, "standby")
        assert non_lease(writes(cluster, "op-a"))
        assert non_lease(writes(cluster, "op-b")) == []
        # a standby reads only the Lease: no watches, no caches
        assert {r.resource for r in cluster if "(op-b)" in r.headers.get("User-Agent", "")} == {
            LEASES
        }

        # the leader shuts down cleanly → releases the Lease → the standby leads at once
        await asyncio.to_thread(a.stop)
        stopped_at = len(list(cluster))
        await eventually(lambda: b.elector.leading, timeout=2.5)  # < the 3 s lease
        assert holder(cluster) == "op-b"
        await api(cluster, "PATCH", route_path(), {"spec": {"autoscaling": {"minReplicas": 4}}})
        await eventually(lambda: status_generation(cluster) == 3)
        after = list(cluster)[stopped_at:]
        assert non_lease([r for r in after if "(op-b)" in r.headers.get("User-Agent", "")])
        assert not [r for r in after if "(op-a)" in r.headers.get("User-Agent", "")]


def status_generation(cluster: ApiServer) -> int:
    route = live(cluster, ROUTES, "chat") or {}
    return int((route.get("status") or {}).get("observedGeneration") or 0)


async def test_a_cut_off_leader_stops_writing_before_another_takes_over(cluster: ApiServer) -> None:
    """An old pod stuck on a partitioned node: it cannot renew, so it stops writing by the
    renew deadline (2 s) — before the Lease expires for the others (3 s)."""
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    await seed_route(cluster, minimal_route())
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_operator(settings("op-a")))
        b = await stack.enter_async_context(running_operator(settings("op-b"), wait_leading=False))
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")

        # op-a can no longer reach the Lease; its watches (already open) still deliver
        cluster.faults.append(
            Fault(503, "connection refused", "ServiceUnavailable", plural="leases", agent="(op-a)")
        )
        cut = len(list(cluster))
        await eventually(lambda: b.elector.leading, timeout=6)
        await eventually(a.lost.is_set, timeout=2)
        assert not a.elector.leading

        # a spec change now is written by op-b only
        await api(cluster, "PATCH", route_path(), {"spec": {"autoscaling": {"minReplicas": 5}}})
        await eventually(lambda: status_generation(cluster) == 2)
        after = list(cluster)[cut:]
        a_writes = [i for i, r in enumerate(after) if r in non_lease(writes(cluster, "op-a"))]
        b_writes = [i for i, r in enumerate(after) if r in non_lease(writes(cluster, "op-b"))]
        assert b_writes
        assert not a_writes or max(a_writes) < min(b_writes)
        assert names(cluster, DEPLOYMENTS) == {"chat-us-east-1", "chat-eu-west-1"}
        hpa = live(cluster, HPAS, "chat-us-east-1") or {}
        assert hpa["spec"]["minReplicas"] == 5
