"""Router and operator pods run as the image's non-root user, read-only, with no capabilities.

The router Deployments come from the operator's render functions (every example, every
variant that changes the pod), the operator's from manifests/ (tests/helm checks the
chart renders the same, and hardens with any values). The Dockerfile's user is the one
the pods name, so the image and the pods agree on who owns what.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from modelroute.operator.render import REGION_LABEL_ANNOTATION, RUN_AS, render
from modelroute.spec import parse_route
from tests.operator.conftest import REPO, SETTINGS, minimal_route
from tests.operator.hardening import assert_hardened

DOCKERFILE = (REPO / "Dockerfile").read_text()


def deployments(document: dict[str, Any]) -> list[dict[str, Any]]:
    objects = render(document, parse_route(document), SETTINGS, "ai")
    found = [obj for obj in objects if obj["kind"] == "Deployment"]
    assert len(found) == len(document["spec"]["regions"])
    return found


def stages(dockerfile: str) -> dict[str, str]:
    """Stage name → its instructions (the text up to the next FROM)."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("variant", ["minimal", "auth", "unpinned", "one-region"])
def test_every_router_container_is_hardened(variant: str) -> None:
    document = minimal_route(regions=("us-east-1",)) if variant == "one-region" else minimal_route()
    if variant == "auth":
        document["spec"]["auth"] = {"keysSecretRef": {"name": "clients", "key": "keys"}}
    if variant == "unpinned":
        document["metadata"]["annotations"] = {REGION_LABEL_ANNOTATION: ""}
    for deployment in deployments(document):
        assert_hardened(deployment, run_as=RUN_AS)


def test_example_routers_are_hardened(example: dict[str, Any]) -> None:
    for deployment in deployments(example):
        assert_hardened(deployment, run_as=RUN_AS)


def test_routers_never_talk_to_the_kubernetes_api() -> None:
    for deployment in deployments(minimal_route()):
        assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_operator_manifest_is_hardened() -> None:
    documents = yaml.safe_load_all((REPO / "manifests" / "30-operator.yaml").read_text())
    (deployment,) = [d for d in documents if d and d["kind"] == "Deployment"]
    assert_hardened(deployment, run_as=RUN_AS)


@pytest.mark.parametrize("stage", ["router", "operator"])
def test_images_run_as_the_user_the_pods_name(stage: str) -> None:
    by_stage = stages(DOCKERFILE)
    (user,) = re.findall(r"^USER\s+(\S+)\s*$", by_stage[stage], flags=re.MULTILINE)
    assert user == f"{RUN_AS}:{RUN_AS}"
    # The numeric user exists in the image (a name in /etc/passwd for tools that look).
    assert re.search(rf"useradd\b[^\n]*--uid {RUN_AS}\b[^\n]*--gid {RUN_AS}\b", DOCKERFILE)
    assert re.search(rf"groupadd\b[^\n]*--gid {RUN_AS}\b", DOCKERFILE)


def test_the_checker_does_reject_a_weak_pod() -> None:
    """Guard against a checker that passes anything."""
    (deployment, _) = deployments(minimal_route())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for key, weak in [
        ("readOnlyRootFilesystem", False),
        ("allowPrivilegeEscalation", True),
        ("capabilities", {"drop": ["ALL"], "add": ["NET_ADMIN"]}),
    ]:
        saved = container["securityContext"][key]
        container["securityContext"][key] = weak
        with pytest.raises(AssertionError):
            assert_hardened(deployment, run_as=RUN_AS)
        container["securityContext"][key] = saved
    assert_hardened(deployment, run_as=RUN_AS)
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = 0
    with pytest.raises(AssertionError):
        assert_hardened(deployment)
