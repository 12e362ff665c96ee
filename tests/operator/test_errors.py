"""Errors reach the user: a refused write is a condition, an Event, and a retry with backoff."""

from __future__ import annotations

import asyncio

from tests.operator.apiserver import ApiServer, Fault
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    DEPLOYMENTS,
    MARK,
    condition,
    events,
    eventually,
    names,
    running_operator,
    seed_route,
    seed_secrets,
    writes,
)

pytestmark = MARK

WEBHOOK = (
    'admission webhook "images.policy.example.com" denied the request: '
    "images must come from registry.internal.example.com"
)


async def test_a_refused_write_is_a_reconcile_error_an_event_and_a_backed_off_retry(
    cluster: ApiServer,
) -> None:
    fault = Fault(403, WEBHOOK, method="PATCH", plural="deployments")
    cluster.faults.append(fault)
    await seed_secrets(cluster, "ds-us-east-1")
    await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    async with running_operator() as operator:
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "ReconcileError")
        ready = condition(cluster, "Ready")
        assert ready["status"] == "False"
        assert ready["message"] == f"applying Deployment chat-us-east-1: {WEBHOOK}"
        assert condition(cluster, "Degraded")["reason"] == "ReconcileError"
        warnings = await eventually(
            lambda: [e for e in events(cluster) if e["reason"] == "ReconcileError"]
        )
        assert warnings[0]["type"] == "Warning"
        assert WEBHOOK in warnings[0]["message"]

        # retried, further and further apart (0.5 s, 1 s, 2 s, ... ±25 %)
        def attempts() -> list[int]:
            return [
                r.id  # the order of arrival
                for r in writes(cluster)
                if r.resource == DEPLOYMENTS and r.name == "chat-us-east-1"
            ]

        await eventually(lambda: len(attempts()) >= 3, timeout=6)
        assert operator.controller is not None
        assert operator.controller.queue.failures(("ai", "chat")) >= 2
        assert len([e for e in events(cluster) if e["reason"] == "ReconcileError"]) == 1
        metrics = operator.metrics.exposition().decode()
        assert 'modelroute_operator_reconciles_total{result="reconcile_error"}' in metrics
        assert (
            'modelroute_operator_api_requests_total{code="403",resource="deployments",verb="apply"}'
            in metrics
        )

        # the webhook is fixed: the next retry goes through
        cluster.faults.remove(fault)
        await eventually(lambda: names(cluster, DEPLOYMENTS) == {"chat-us-east-1"}, timeout=10)
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        await asyncio.sleep(0.1)
        assert operator.controller.queue.failures(("ai", "chat")) == 0
