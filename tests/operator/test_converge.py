"""converge(): create what is missing, patch what drifted, delete what is no longer rendered."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelroute.operator.converge import converge, drifted, owned_by
from modelroute.operator.kube import CHILD_KINDS, Conflict, Kind, kind_of
from modelroute.operator.render import render
from modelroute.spec import parse_route
from tests.operator.conftest import SETTINGS, minimal_route


class FakeKube:
    """In-memory objects keyed by (kind, name); records writes. Ignores selectors like kmock."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.hidden: set[tuple[str, str]] = set()  # exist, but not listed (e.g. no label)

    def list(self, kind: Kind, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (k, n), o in self.objects.items()
            if k == kind.kind and (k, n) not in self.hidden
        ]

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in self.objects:
            raise Conflict(409, "AlreadyExists", "exists")
        self.objects[key] = copy.deepcopy(obj)
        self.writes.append(("create", *key))
        return copy.deepcopy(obj)

    def patch(self, obj: dict[str, Any]) -> dict[str, Any]:
        key = (obj["kind"], obj["metadata"]["name"])
        self.objects[key] = copy.deepcopy(obj)
        self.writes.append(("patch", *key))
        return copy.deepcopy(obj)

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        del self.objects[kind.kind, name]
        self.writes.append(("delete", kind.kind, name))


def desired(regions: tuple[str, ...] = ("us-east-1", "eu-west-1")) -> list[dict[str, Any]]:
    document = minimal_route(regions=regions)
    document["metadata"]["uid"] = "uid-1"
    return render(document, parse_route(document), SETTINGS, "ai")


def run(kube: FakeKube, objects: list[dict[str, Any]]) -> Any:
    return converge(kube, objects, "chat", "ai", "uid-1")  # type: ignore[arg-type]


def test_first_run_creates_everything_second_run_writes_nothing() -> None:
    kube = FakeKube()
    result = run(kube, desired())
    assert [str(c) for c in result.changes][:2] == [
        "created ConfigMap chat-us-east-1",
        "created Deployment chat-us-east-1",
    ]
    assert len(kube.objects) == 11
    kube.writes.clear()
    assert run(kube, desired()).changes == []
    assert kube.writes == []


def test_fields_added_by_the_server_are_not_drift() -> None:
    kube = FakeKube()
    run(kube, desired())
    deployment = kube.objects["Deployment", "chat-us-east-1"]
    deployment["spec"]["replicas"] = 4  # the HPA's
    deployment["metadata"]["uid"] = "x"
    deployment["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] = (
        "/dev/termination-log"
    )
    deployment["status"] = {"readyReplicas": 4}
    kube.writes.clear()
    run(kube, desired())
    assert kube.writes == []


def test_hand_edit_is_patched_back() -> None:
    kube = FakeKube()
    run(kube, desired())
    kube.objects["Deployment", "chat-us-east-1"]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] = "evil:1"
    result = run(kube, desired())
    assert [str(c) for c in result.changes] == ["patched Deployment chat-us-east-1"]
    assert (
        kube.objects["Deployment", "chat-us-east-1"]["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        == SETTINGS.router_image
    )


def test_removed_region_is_pruned_and_nothing_else() -> None:
    kube = FakeKube()
    run(kube, desired())
    kube.objects["ConfigMap", "unrelated"] = {
        "kind": "ConfigMap",
        "metadata": {"name": "unrelated", "labels": {}},
    }
    result = run(kube, desired(("us-east-1",)))
    deleted = sorted(c.name for c in result.changes if c.verb == "deleted")
    assert deleted == ["chat-eu-west-1"] * 5
    assert ("ConfigMap", "unrelated") in kube.objects


def test_children_of_another_route_object_with_same_name_are_not_pruned() -> None:
    kube = FakeKube()
    run(kube, desired())
    other = copy.deepcopy(kube.objects["ConfigMap", "chat-eu-west-1"])
    other["metadata"]["name"] = "chat-old"
    other["metadata"]["ownerReferences"][0]["uid"] = "uid-of-an-earlier-route"
    kube.objects["ConfigMap", "chat-old"] = other
    run(kube, desired())
    assert ("ConfigMap", "chat-old") in kube.objects


def test_create_conflict_falls_back_to_patch() -> None:
    kube = FakeKube()
    objects = desired()
    kube.objects["ConfigMap", "chat-us-east-1"] = {
        "kind": "ConfigMap",
        "metadata": {"name": "chat-us-east-1"},
    }
    kube.hidden.add(("ConfigMap", "chat-us-east-1"))
    result = run(kube, objects)
    assert "patched ConfigMap chat-us-east-1" in [str(c) for c in result.changes]
    assert kube.objects["ConfigMap", "chat-us-east-1"] == objects[0]


@pytest.mark.parametrize(
    ("desired_value", "live_value", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": 1}, {"a": 2}, True),
        ({"a": 1}, {}, True),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, True),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}, False),
        ({"a": {"b": {"c": "d"}}}, {"a": {"b": "d"}}, True),
        ("x", "x", False),
    ],
)
def test_drifted(desired_value: Any, live_value: Any, expected: bool) -> None:
    assert drifted(desired_value, live_value) is expected


def test_owned_by() -> None:
    obj = {
        "metadata": {"labels": {"modelroute.io/route": "chat"}, "ownerReferences": [{"uid": "u"}]}
    }
    assert owned_by(obj, "chat", "u")
    assert not owned_by(obj, "chat", "other")
    assert not owned_by(obj, "other", "u")
    assert owned_by(obj, "chat", None)


def test_kind_table_covers_every_rendered_kind() -> None:
    assert {kind_of(obj) for obj in desired()} == set(CHILD_KINDS)
    assert CHILD_KINDS[0].path("ai", "x") == "/api/v1/namespaces/ai/configmaps/x"
    assert CHILD_KINDS[1].path("ai") == "/apis/apps/v1/namespaces/ai/deployments"
