"""reconcile(): every reason a route is not applied becomes a condition and one Event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelroute.operator.kube import ApiError
from modelroute.operator.reconcile import Outcome, reconcile
from modelroute.operator.settings import OperatorSettings
from modelroute.operator.status import condition
from tests.operator.conftest import SETTINGS, minimal_route
from tests.operator.memory import MemoryCluster

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def route(**changes: Any) -> dict[str, Any]:
    document = minimal_route()
    document["metadata"].update(uid="uid-1", generation=3, **changes)
    return document


def run(
    cluster: MemoryCluster, body: dict[str, Any], settings: OperatorSettings = SETTINGS
) -> Outcome:
    outcome = reconcile(body, cluster, settings, NOW)
    body["status"] = {**body.get("status", {}), **outcome.status}  # as the status write does
    return outcome


def keyed() -> MemoryCluster:
    cluster = MemoryCluster()
    cluster.secrets = {"ds-us-east-1": ["apiKey"], "ds-eu-west-1": ["apiKey"]}
    return cluster


def test_applied_route_reports_regions_and_one_applied_event() -> None:
    cluster, body = keyed(), route()
    outcome = run(cluster, body)
    assert outcome.reason == "RegionsNotReady" and not outcome.retry
    assert [e.reason for e in outcome.events] == ["Applied"]
    assert outcome.status["observedGeneration"] == 3
    assert outcome.status["readyRegions"] == "0/2"
    again = run(cluster, body)
    assert again.events == [] and again.changes == []


def test_invalid_spec_writes_nothing_and_announces_once() -> None:
    cluster, body = MemoryCluster(), route()
    cluster.secrets = {"ds-us-east-1": ["apiKey"]}
    outcome = run(cluster, body)
    assert outcome.reason == "InvalidSpec" and cluster.writes == []
    assert [e.reason for e in outcome.events] == ["InvalidSpec"]
    assert run(cluster, body).events == []


def test_name_conflict_writes_nothing_retries_and_names_the_object() -> None:
    cluster, body = keyed(), route()
    cluster.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "chat"}})
    outcome = run(cluster, body)
    assert (outcome.reason, outcome.retry, cluster.writes) == ("NameConflict", True, [])
    (event,) = outcome.events
    assert (event.type, event.reason) == ("Warning", "NameConflict")
    assert event.message.startswith('Service "chat" already exists')
    ready = condition(outcome.status, "Ready") or {}
    assert ready["status"] == "False"


def test_a_refused_write_is_a_reconcile_error_with_the_servers_message() -> None:
    cluster, body = keyed(), route()
    cluster.refuse["HorizontalPodAutoscaler", "chat-us-east-1"] = ApiError(
        403, "Forbidden", 'exceeded quota: "compute", requested: count/hpa=1'
    )
    outcome = run(cluster, body)
    assert (outcome.reason, outcome.retry) == ("ReconcileError", True)
    ready = condition(outcome.status, "Ready") or {}
    assert ready["message"] == (
        'applying HorizontalPodAutoscaler chat-us-east-1: exceeded quota: "compute", '
        "requested: count/hpa=1"
    )
    assert [(e.type, e.reason) for e in outcome.events] == [("Warning", "ReconcileError")]
    assert run(cluster, body).events == []  # the same failure again: no second Event
    del cluster.refuse["HorizontalPodAutoscaler", "chat-us-east-1"]
    assert run(cluster, body).reason == "RegionsNotReady"


def test_an_operator_for_other_regions_touches_nothing() -> None:
    cluster, body = keyed(), route()
    elsewhere = OperatorSettings(regions=frozenset({"ap-south-1"}))
    outcome = run(cluster, body, elsewhere)
    assert (outcome.reason, cluster.writes) == ("NoServedRegion", [])
    assert (condition(outcome.status, "Ready") or {})["message"] == (
        "this operator serves ap-south-1; the route lists us-east-1, eu-west-1"
    )


def test_a_refused_read_is_a_reconcile_error_too() -> None:
    cluster, body = keyed(), route()
    cluster.refuse_reads = ApiError(403, "Forbidden", 'cannot get resource "configmaps"')
    outcome = run(cluster, body)
    assert (outcome.reason, outcome.retry, cluster.writes) == ("ReconcileError", True, [])
    assert (condition(outcome.status, "Ready") or {})["message"] == (
        'checking the children\'s names: cannot get resource "configmaps"'
    )
