"""`kubectl apply -f manifests/`: valid objects, in an order that works, one image version."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

import modelroute
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


def test_operator_runs_the_packaged_version_with_liveness() -> None:
    (deployment,) = [d for d in documents() if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    (container,) = spec["template"]["spec"]["containers"]
    version = modelroute.__version__
    # Two images from one Dockerfile: the operator's carries kopf and kubernetes.
    assert container["image"] == f"ghcr.io/modelroute/modelroute-operator:{version}"
    router_image = f"ghcr.io/modelroute/modelroute:{version}"
    assert {"name": "MODELROUTE_ROUTER_IMAGE", "value": router_image} in container["env"]
    assert container["args"] == ["operator"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"][0]["containerPort"] == 8081  # commands.DEFAULT_LIVENESS
    assert spec["template"]["spec"]["serviceAccountName"] == "modelroute-operator"
