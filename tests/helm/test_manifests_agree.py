"""The chart and manifests/ cannot drift: manifests/ is the source, the chart must match it.

manifests/20-rbac.yaml is what tests/operator/test_manifests.py checks against every request
the operator makes, and manifests/30-operator.yaml is what `kubectl apply -f manifests/`
runs. With default values and release "modelroute" in "modelroute-system", the chart must
render the very same objects: equal field by field once the labels only Helm adds
(instance, version, managed-by, helm.sh/chart) are taken out. The Namespace is Helm's
(`--create-namespace`) and the CRD comes from crds/ (byte-identical, test_chart.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import modelroute

from .chart import ALL_ON, RELEASE, Helm, Manifest, by_kind, manifest_documents

CHART_LABELS = {
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/version": modelroute.__version__,
    "app.kubernetes.io/managed-by": "Helm",
    "helm.sh/chart": f"modelroute-{modelroute.__version__}",
}
NOT_IN_CHART = {"Namespace", "CustomResourceDefinition"}


def without_chart_labels(value: Any) -> Any:
    """A copy with Helm's own labels checked and removed from every label map."""
    if isinstance(value, list):
        return [without_chart_labels(item) for item in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        if key in ("labels", "matchLabels"):
            extra = {k: v for k, v in item.items() if k in CHART_LABELS}
            # The selector carries only the instance label; everything else carries all four.
            assert extra == {k: CHART_LABELS[k] for k in extra}, extra
            item = {k: v for k, v in item.items() if k not in CHART_LABELS}
        result[key] = without_chart_labels(item)
    return result


def key(document: Manifest) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


@pytest.fixture(scope="module")
def chart(helm: Helm) -> dict[tuple[str, str], Manifest]:
    return {key(o): o for o in helm.template()}


MANIFEST_OBJECTS = {key(d): d for d in manifest_documents() if d["kind"] not in NOT_IN_CHART}


def test_the_same_objects(chart: dict[tuple[str, str], Manifest]) -> None:
    assert sorted(chart) == sorted(MANIFEST_OBJECTS)


@pytest.mark.parametrize("name", sorted(MANIFEST_OBJECTS), ids=lambda k: f"{k[0]}/{k[1]}")
def test_object_equals_the_manifest(
    chart: dict[tuple[str, str], Manifest], name: tuple[str, str]
) -> None:
    rendered = chart[name]
    assert without_chart_labels(rendered) == MANIFEST_OBJECTS[name]
    labels = rendered["metadata"]["labels"]
    assert CHART_LABELS.items() <= labels.items()


def test_deployment_selector_is_the_manifests_plus_the_release(
    chart: dict[tuple[str, str], Manifest],
) -> None:
    deployment = chart["Deployment", "modelroute-operator"]
    manifest = MANIFEST_OBJECTS["Deployment", "modelroute-operator"]
    assert deployment["spec"]["selector"]["matchLabels"] == {
        **manifest["spec"]["selector"]["matchLabels"],
        "app.kubernetes.io/instance": RELEASE,
    }


def test_the_comparison_notices_a_difference(chart: dict[tuple[str, str], Manifest]) -> None:
    """Guard against a comparison that passes whatever the chart renders."""
    deployment = copy.deepcopy(chart["Deployment", "modelroute-operator"])
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSeconds"] = 30
    assert without_chart_labels(deployment) != MANIFEST_OBJECTS["Deployment", "modelroute-operator"]


def test_watched_namespaces_get_the_same_rules_in_a_role_each(helm: Helm) -> None:
    """With watchNamespaces, every rule is namespaced: a Role per namespace holds the
    manifest's ClusterRole rules, and there is no ClusterRole at all."""
    objects = helm.template({"watchNamespaces": ALL_ON["watchNamespaces"]})
    manifest_rules = MANIFEST_OBJECTS["ClusterRole", "modelroute-operator"]["rules"]
    assert by_kind(objects, "ClusterRole") == by_kind(objects, "ClusterRoleBinding") == []
    roles = [r for r in by_kind(objects, "Role") if not r["metadata"]["name"].endswith("-election")]
    assert [r["metadata"]["namespace"] for r in roles] == ALL_ON["watchNamespaces"]
    for role in roles:
        assert role["rules"] == manifest_rules
    bindings = [
        b
        for b in by_kind(objects, "RoleBinding")
        if not b["metadata"]["name"].endswith("-election")
    ]
    assert [b["metadata"]["namespace"] for b in bindings] == ALL_ON["watchNamespaces"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "modelroute-operator",
        }
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "modelroute-operator",
                "namespace": "modelroute-system",
            }
        ]
