"""Leader election's decision, pure: when to take, renew or wait, and what to write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelroute.operator.leader import Decision, Seen, decide, lease_record, observe
from modelroute.operator.settings import Timing

AT = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def lease(holder: str, renew: str = "t1", duration: int = 30) -> dict[str, object]:
    return {
        "metadata": {"name": "modelroute-operator", "resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "renewTime": renew, "leaseDurationSeconds": duration},
    }


def test_no_lease_is_created() -> None:
    assert decide(observe(None, None, 0.0), "a", 0.0) is Decision.CREATE


def test_our_own_lease_is_renewed() -> None:
    assert decide(observe(lease("a"), None, 0.0), "a", 100.0) is Decision.RENEW


def test_a_held_lease_is_waited_for_until_it_was_not_renewed_for_its_duration() -> None:
    seen = observe(lease("b"), None, 10.0)
    assert decide(seen, "a", 39.9) is Decision.WAIT
    assert decide(seen, "a", 40.0) is Decision.TAKE


def test_expiry_counts_from_when_this_process_saw_a_change_not_from_the_holders_clock() -> None:
    first = observe(lease("b", renew="t1"), None, 10.0)
    same = observe(lease("b", renew="t1"), first, 25.0)
    assert same is first  # unchanged: the clock keeps running
    renewed = observe(lease("b", renew="t2"), same, 35.0)
    assert renewed == Seen("b", "t2", 30.0, 35.0)
    assert decide(renewed, "a", 50.0) is Decision.WAIT


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide(observe(lease("", duration=1), None, 0.0), "a", 0.0) is Decision.TAKE


def test_records() -> None:
    taken = lease_record(lease("b"), "a", 30, "ns", "modelroute-operator", AT)
    assert taken["metadata"] == {
        "name": "modelroute-operator",
        "namespace": "ns",
        "resourceVersion": "7",  # the write fails (409) if someone wrote meanwhile
    }
    assert taken["spec"] == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 30,
        "renewTime": "2025-01-01T12:00:00.123456Z",
        "acquireTime": "2025-01-01T12:00:00.123456Z",
        "leaseTransitions": 1,
    }
    renewed = lease_record(taken, "a", 30, "ns", "modelroute-operator", AT)
    assert renewed["spec"]["leaseTransitions"] == 1
    released = lease_record(taken, "a", 30, "ns", "modelroute-operator", AT, release=True)
    assert (released["spec"]["holderIdentity"], released["spec"]["leaseDurationSeconds"]) == ("", 1)
    created = lease_record(None, "a", 30, "ns", "modelroute-operator", AT)
    assert created["spec"]["leaseTransitions"] == 0 and "resourceVersion" not in created["metadata"]


def test_timing_must_stop_a_leader_before_others_may_take_over() -> None:
    assert Timing().renew_deadline < Timing().lease_duration
    with pytest.raises(ValueError):
        Timing(lease_duration=10, renew_deadline=10, retry_period=2)
