"""Status and conditions: pure functions of observed Deployments (KEP-1623)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelroute.operator.status import (
    Condition,
    RegionState,
    invalid_status,
    merge_conditions,
    running_conditions,
    running_status,
)
from modelroute.spec import SpecError, parse_route
from tests.operator.conftest import minimal_route

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def deployment(
    ready: int, replicas: int = 2, updated: int | None = None, observed: int | None = 1
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": replicas if updated is None else updated,
    }
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"generation": 1}, "spec": {"replicas": replicas}, "status": status}


def test_region_state_from_a_settled_deployment() -> None:
    assert RegionState.observe("r", deployment(ready=2)) == RegionState("r", 2, 2, False)


def test_region_state_rolling_out_while_generation_unobserved() -> None:
    assert RegionState.observe("r", deployment(ready=2, observed=None)).rolling_out
    assert RegionState.observe(
        "r", dict(deployment(ready=2), metadata={"generation": 2})
    ).rolling_out


def test_region_state_rolling_out_while_pods_are_old() -> None:
    assert RegionState.observe("r", deployment(ready=2, updated=1)).rolling_out


def test_region_state_of_a_missing_deployment() -> None:
    assert RegionState.observe("r", None) == RegionState("r", 0, 0, True)


def test_ready_when_every_region_has_a_ready_router() -> None:
    ready, progressing, degraded = running_conditions(
        [RegionState("a", 2, 1, False), RegionState("b", 2, 2, False)], changed=False
    )
    assert (ready.status, ready.reason) == (True, "AllRegionsReady")
    assert (progressing.status, progressing.reason) == (False, "RolloutComplete")
    assert (degraded.status, degraded.reason) == (
        True,
        "RoutersUnavailable",
    )  # a has 1/2 outside a rollout
    assert "a (1/2 ready)" in degraded.message


def test_not_ready_names_the_regions() -> None:
    ready, progressing, degraded = running_conditions(
        [RegionState("a", 0, 0, True), RegionState("b", 2, 2, False)], changed=False
    )
    assert (ready.status, ready.reason) == (False, "RegionsNotReady")
    assert ready.message == "no ready router in: a"
    assert progressing.status is True
    assert degraded.status is False  # still rolling out: not (yet) a fault


def test_a_write_means_progressing() -> None:
    _, progressing, _ = running_conditions([RegionState("a", 2, 2, False)], changed=True)
    assert (progressing.status, progressing.reason) == (True, "RollingOut")


def test_transition_time_kept_without_a_flip_and_reset_on_one() -> None:
    first = merge_conditions([], [Condition("Ready", False, "RegionsNotReady", "x")], 1, T0)
    same = merge_conditions(first, [Condition("Ready", False, "InvalidSpec", "y")], 2, T1)
    assert same[0]["lastTransitionTime"] == "2025-01-01T00:00:00Z"
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("InvalidSpec", 2)
    flipped = merge_conditions(same, [Condition("Ready", True, "AllRegionsReady", "z")], 2, T1)
    assert flipped[0]["lastTransitionTime"] == "2025-01-01T00:05:00Z"
    assert flipped[0]["status"] == "True"


def test_messages_are_bounded() -> None:
    (entry,) = merge_conditions(
        [], [Condition("Ready", False, "InvalidSpec", "x" * 5000)], None, T0
    )
    assert len(entry["message"]) == 1024
    assert "observedGeneration" not in entry


def test_running_status_summarises_for_printer_columns() -> None:
    route = parse_route(minimal_route())
    regions = [RegionState("us-east-1", 2, 2, False), RegionState("eu-west-1", 1, 0, True)]
    status = running_status(route, regions, False, {}, 4, T0)
    assert status["readyRegions"] == "1/2"
    assert status["models"] == "chat-fast"
    assert status["observedGeneration"] == 4
    assert status["regions"] == [
        {"name": "us-east-1", "replicas": 2, "readyReplicas": 2},
        {"name": "eu-west-1", "replicas": 1, "readyReplicas": 0},
    ]
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Progressing", "Degraded"]


def test_invalid_status_keeps_region_counts_and_lists_every_problem() -> None:
    errors = [SpecError("spec.a", "bad"), SpecError("spec.b", "worse")]
    status = invalid_status(errors, {"readyRegions": "2/2"}, 5, T0)
    assert "readyRegions" not in status  # left as last observed by the merge patch
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert ready["message"] == "spec.a: bad; spec.b: worse"
    assert status["conditions"][2]["status"] == "True"  # Degraded
