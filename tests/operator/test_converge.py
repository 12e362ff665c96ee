"""Deciding what to write: owned names, drift that is real, pruning with rollback history.

Pure functions of the rendered objects and what the API server holds; the API
server's side (normalisation, defaults, dropped fields, field ownership) comes
from :mod:`tests.operator.semantics`, not from the operator's own assumptions.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from modelroute.operator.converge import (
    APPLIED_ANNOTATION,
    NameConflict,
    Snapshot,
    WriteFailed,
    controlled_by,
    equivalent,
    execute,
    needs_apply,
    plan,
    quantity_value,
    snapshot_of,
    upgraded_managed_fields,
    with_digest,
)
from modelroute.operator.kube import CHILD_KINDS, ApiError, kind_of
from modelroute.operator.render import REVISION_HISTORY, render
from modelroute.spec import parse_route
from tests.operator import semantics
from tests.operator.conftest import SETTINGS, minimal_route
from tests.operator.memory import MemoryCluster

UID = "uid-1"


def desired(
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1"), **spec: Any
) -> list[dict[str, Any]]:
    document = minimal_route(regions=regions)
    document["metadata"]["uid"] = UID
    document["spec"].update(spec)
    return render(document, parse_route(document), SETTINGS, "ai")


def converge(cluster: MemoryCluster, objects: list[dict[str, Any]]) -> list[str]:
    snapshots = {
        o["metadata"]["uid"]: s
        for o in cluster.children(UID)
        if (s := cluster.snapshot(o["metadata"]["uid"])) is not None
    }
    planned = plan(objects, cluster.children(UID), cluster.lookup, UID, snapshots)
    assert not planned.conflicts, planned.conflicts
    changes, _ = execute(planned, cluster.apply, cluster.delete)
    return [str(change) for change in changes]


def test_first_run_creates_everything_second_run_writes_nothing() -> None:
    cluster = MemoryCluster()
    changes = converge(cluster, desired())
    assert changes[1:3] == ["created Deployment chat-us-east-1", "created Service chat-us-east-1"]
    assert changes[0].startswith("created ConfigMap chat-us-east-1-")
    assert len(cluster.objects) == 11
    cluster.writes.clear()
    assert converge(cluster, desired()) == []
    assert cluster.writes == []


@pytest.mark.parametrize("remember", [True, False], ids=["snapshot", "after-a-restart"])
def test_normalised_defaulted_and_dropped_fields_are_not_drift(remember: bool) -> None:
    cluster = MemoryCluster(dropped={"Service": [("spec", "trafficDistribution")]})
    objects = desired(
        resources={"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": "2000m"}},
        autoscaling={"targetP99": "0.5s"},
    )
    converge(cluster, objects)
    deployment = cluster.objects["Deployment", "chat-us-east-1"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2"},
    }
    assert "trafficDistribution" not in cluster.objects["Service", "chat"]["spec"]
    cluster.writes.clear()
    cluster.remember = remember
    assert converge(cluster, objects) == []


def test_a_hand_edit_is_drift_and_so_is_a_removed_key_while_the_operator_remembers() -> None:
    cluster = MemoryCluster()
    converge(cluster, desired())
    cluster.edit(
        "Deployment",
        "chat-us-east-1",
        {"spec": {"template": {"spec": {"nodeSelector": None, "enableServiceLinks": True}}}},
    )
    assert converge(cluster, desired()) == ["applied Deployment chat-us-east-1"]
    pod = cluster.objects["Deployment", "chat-us-east-1"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"topology.kubernetes.io/region": "us-east-1"}
    assert pod["enableServiceLinks"] is False


def test_fields_other_managers_own_are_left_alone() -> None:
    cluster = MemoryCluster()
    converge(cluster, desired())
    cluster.edit(
        "Deployment",
        "chat-us-east-1",
        {"metadata": {"labels": {"team": "ml"}}, "spec": {"replicas": 7}},  # kubectl, the HPA
    )
    assert converge(cluster, desired()) == []
    cluster.edit("HorizontalPodAutoscaler", "chat-us-east-1", {"spec": {"maxReplicas": 99}})
    assert converge(cluster, desired()) == ["applied HorizontalPodAutoscaler chat-us-east-1"]
    deployment = cluster.objects["Deployment", "chat-us-east-1"]
    assert (deployment["spec"]["replicas"], deployment["metadata"]["labels"]["team"]) == (7, "ml")


def test_a_field_the_render_drops_is_removed_from_the_object() -> None:
    cluster = MemoryCluster()
    converge(cluster, desired())
    unpinned = minimal_route()
    unpinned["metadata"].update(uid=UID, annotations={"modelroute.io/node-region-label": ""})
    objects = render(unpinned, parse_route(unpinned), SETTINGS, "ai")
    assert "applied Deployment chat-us-east-1" in converge(cluster, objects)
    pod = cluster.objects["Deployment", "chat-us-east-1"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod


def test_a_name_held_by_another_route_or_by_nobody_is_a_conflict_and_nothing_is_written() -> None:
    cluster = MemoryCluster()
    other = copy.deepcopy(desired()[1])  # the Deployment chat-us-east-1 ...
    other["metadata"]["ownerReferences"][0].update(name="chat-us", uid="uid-2")  # ... of chat-us
    cluster.put(other)
    cluster.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "chat"}})
    planned = plan(desired(), [], cluster.lookup, UID, {})
    assert planned.conflicts == [
        NameConflict("Deployment", "chat-us-east-1", 'controlled by ModelRoute "chat-us"'),
        NameConflict("Service", "chat", "not controlled by any ModelRoute"),
    ]
    assert (planned.apply, planned.delete) == ([], [])
    assert str(planned.conflicts[0]) == (
        'Deployment "chat-us-east-1" already exists and is controlled by ModelRoute "chat-us": '
        "not taken over"
    )


def test_names_the_caches_know_are_not_looked_up_again() -> None:
    cluster = MemoryCluster()
    converge(cluster, desired())
    cluster.reads.clear()
    converge(cluster, desired())
    assert cluster.reads == []


def test_removed_region_is_pruned_and_nothing_else() -> None:
    cluster = MemoryCluster()
    converge(cluster, desired())
    cluster.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}})
    changes = converge(cluster, desired(("us-east-1",)))
    deleted = sorted(c.split()[-1] for c in changes if c.startswith("deleted"))
    assert [n for n in deleted if not n.startswith("chat-eu-west-1-")] == ["chat-eu-west-1"] * 4
    assert len([n for n in deleted if n.startswith("chat-eu-west-1-")]) == 1  # its ConfigMap
    assert ("ConfigMap", "unrelated") in cluster.objects


def test_each_region_keeps_its_newest_config_maps_for_rollbacks() -> None:
    cluster = MemoryCluster()
    names = []
    for step in range(REVISION_HISTORY + 3):
        objects = desired(("us-east-1",), autoscaling={"targetInFlight": 10 + step})
        converge(cluster, objects)
        names.append(objects[0]["metadata"]["name"])
    kept = sorted(k[1] for k in cluster.objects if k[0] == "ConfigMap")
    assert kept == sorted(names[-(REVISION_HISTORY + 1) :])


def test_a_refused_write_stops_the_plan_and_keeps_the_api_servers_words() -> None:
    cluster = MemoryCluster()
    cluster.refuse["Deployment", "chat-us-east-1"] = ApiError(403, "Forbidden", "denied by policy")
    planned = plan(desired(), [], cluster.lookup, UID, {})
    with pytest.raises(WriteFailed) as failed:
        execute(planned, cluster.apply, cluster.delete)
    assert failed.value.what == "applying Deployment chat-us-east-1"
    assert failed.value.error.message == "denied by policy"
    assert [w[1] for w in cluster.writes] == ["ConfigMap"]  # written before it, kept


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        ("1Gi", Decimal(1024**3)),
        ("1024Mi", Decimal(1024**3)),
        ("2k", Decimal(2000)),
        ("1e3", Decimal(1000)),
        (2, Decimal(2)),
        ("25%", None),
        ("us-east-1", None),
    ],
)
def test_quantity_value(text: Any, value: Decimal | None) -> None:
    assert quantity_value(text) == value


@pytest.mark.parametrize("text", ["0.5", "1024Mi", "1536Mi", "0.5Gi", "2000", "100m", "1.5"])
def test_quantity_value_survives_the_servers_canonical_form(text: str) -> None:
    assert quantity_value(semantics.canonical_quantity(text)) == quantity_value(text)


@pytest.mark.parametrize(
    ("wanted", "found", "same"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),  # defaults the server added
        ({"a": 1}, {}, True),  # a field the server dropped
        ({"a": 1}, {"a": 2}, False),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}, True),
        ({"requests": {"cpu": "0.5"}}, {"requests": {"cpu": "500m"}}, True),
        ({"requests": {"cpu": "1"}}, {"requests": {"cpu": "500m"}}, False),
        ({"image": "1.0"}, {"image": "1"}, False),  # not a quantity field
    ],
)
def test_equivalent(wanted: Any, found: Any, same: bool) -> None:
    assert equivalent(wanted, found) is same


def test_needs_apply_reasons() -> None:
    obj = with_digest(desired()[2])  # a Service
    live = semantics.with_defaults(copy.deepcopy(obj))
    assert needs_apply(obj, None, None) == "missing"
    assert needs_apply(obj, live, None) is None
    changed = with_digest(dict(obj, spec=dict(obj["spec"], type="NodePort")))
    assert needs_apply(changed, live, None) == "changed"
    snapshot = snapshot_of(obj, live)
    edited = copy.deepcopy(live)
    del edited["spec"]["ports"]
    assert needs_apply(obj, edited, snapshot) == "edited"
    assert needs_apply(obj, edited, None) is None  # without a snapshot: maybe dropped
    assert needs_apply(obj, live, Snapshot("other", None)) is None
    assert APPLIED_ANNOTATION in obj["metadata"]["annotations"]


def test_controlled_by() -> None:
    obj = {"metadata": {"ownerReferences": [{"uid": "u", "controller": True}]}}
    assert controlled_by(obj, "u")
    assert not controlled_by(obj, "other")
    assert not controlled_by({"metadata": {"ownerReferences": [{"uid": "u"}]}}, "u")
    assert not controlled_by(obj, None)


def test_kind_table_covers_every_rendered_kind() -> None:
    assert {kind_of(obj) for obj in desired()} == set(CHILD_KINDS)
    assert CHILD_KINDS[0].path("ai", "x") == "/api/v1/namespaces/ai/configmaps/x"
    assert CHILD_KINDS[1].path("ai") == "/apis/apps/v1/namespaces/ai/deployments"
    assert CHILD_KINDS[1].path(None) == "/apis/apps/v1/deployments"


def test_the_old_operators_fields_are_handed_to_the_apply_manager() -> None:
    """As client-go's csaupgrade does, on managedFields as a real API server writes them."""
    entries = [
        {
            "manager": "OpenAPI-Generator",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": "2025-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:nodeSelector": {".": {}}}}}},
        },
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "subresource": "status",
            "fieldsV1": {"f:status": {"f:replicas": {}}},
        },
        {
            "manager": "modelroute",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {".": {}}}}},
        },
    ]
    upgraded = upgraded_managed_fields({"metadata": {"managedFields": entries}})
    assert upgraded == [
        entries[1],
        {
            "manager": "modelroute",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {"f:spec": {".": {}, "f:nodeSelector": {".": {}}}},
                }
            },
        },
    ]
    assert upgraded_managed_fields({"metadata": {"managedFields": entries[1:]}}) is None
