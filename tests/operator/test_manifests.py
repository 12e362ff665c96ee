"""`kubectl apply -f manifests/`: valid objects, in an order that works, one image version."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

import modelroute
from modelroute.operator import commands
from modelroute.operator.settings import LEASE_NAME
from tests.operator.conftest import REPO

MANIFESTS = sorted((REPO / "manifests").glob("*.yaml"))


def documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_apply_order_is_namespace_crd_rbac_operator() -> None:
    assert [path.name for path in MANIFESTS] == [
        "00-namespace.yaml",
        "10-crd.yaml",
        "20-rbac.yaml",
        "30-operator.yaml",
    ]


@pytest.mark.parametrize(
    "document", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_manifest_passes_kubernetes_validate(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, "1.33", strict=True)


def test_kubernetes_validate_does_catch_a_wrong_type() -> None:
    """Guard against a validator that accepts anything."""
    (deployment,) = [d for d in documents() if d["kind"] == "Deployment"]
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)


def test_operator_runs_the_packaged_version_two_replicas_with_probes() -> None:
    (deployment,) = [d for d in documents() if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    # Leader election makes any number of replicas safe; two survive a node.
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (container,) = spec["template"]["spec"]["containers"]
    version = modelroute.__version__
    # Two images from one Dockerfile: the operator's carries the kubernetes client.
    assert container["image"] == f"ghcr.io/modelroute/modelroute-operator:{version}"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MODELROUTE_ROUTER_IMAGE"] == f"ghcr.io/modelroute/modelroute:{version}"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert container["args"] == ["operator"]
    assert container["ports"] == [{"name": "admin", "containerPort": 8081, "protocol": "TCP"}]
    assert commands.DEFAULT_LISTEN.endswith(":8081")
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["livenessProbe"]["timeoutSeconds"] >= 5
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert spec["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8081"
    assert spec["template"]["spec"]["serviceAccountName"] == "modelroute-operator"


def test_the_lease_role_is_in_the_operators_namespace_for_its_lease_only() -> None:
    (role,) = [d for d in documents() if d["kind"] == "Role"]
    (binding,) = [d for d in documents() if d["kind"] == "RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "modelroute-system"
    assert {tuple(r["resources"]) for r in role["rules"]} == {("leases",)}
    named = [r for r in role["rules"] if "resourceNames" in r]
    assert named == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [LEASE_NAME],
            "verbs": ["get", "update"],
        }
    ]
