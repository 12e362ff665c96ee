"""Server-side apply: removed fields go, normalised/defaulted/dropped fields are not drift.

The test API server normalises quantities (``0.5`` → ``500m``, ``1024Mi`` →
``1Gi``), fills in defaults, and here also plays a Kubernetes 1.30 that does
not know ``Service.spec.trafficDistribution``: the operator must apply once
and then leave the objects alone, across status changes and a restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

from modelroute.operator.render import REGION_LABEL_ANNOTATION, render
from modelroute.spec import parse_route
from tests.operator.apiserver import ApiServer
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    DEPLOYMENTS,
    MARK,
    NS,
    SERVICES,
    WATCHED,
    api,
    condition,
    events,
    eventually,
    live,
    ready_deployment,
    route_path,
    running_operator,
    seed_route,
    seed_secrets,
    settings,
    writes,
)

pytestmark = MARK


def pod(cluster: ApiServer, name: str = "chat-us-east-1") -> dict[str, Any]:
    spec: dict[str, Any] = (live(cluster, DEPLOYMENTS, name) or {})["spec"]["template"]["spec"]
    return spec


def applies(cluster: ApiServer) -> list[str]:
    return [
        f"{w.resource.plural}/{w.name}"
        for w in writes(cluster)
        if w.resource is not None and "apply-patch" in w.headers.get("Content-Type", "")
    ]


async def test_removing_the_annotation_removes_the_node_selector(cluster: ApiServer) -> None:
    await seed_secrets(cluster, "ds-us-east-1")
    await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    async with running_operator():
        await eventually(lambda: live(cluster, DEPLOYMENTS, "chat-us-east-1"))
        assert pod(cluster)["nodeSelector"] == {"topology.kubernetes.io/region": "us-east-1"}

        # the README's advice for kind/minikube: pinning off → the key is gone, not kept
        await api(
            cluster,
            "PATCH",
            route_path(),
            {"metadata": {"annotations": {REGION_LABEL_ANNOTATION: ""}}},
        )
        await eventually(lambda: "nodeSelector" not in pod(cluster), timeout=WATCHED)

        # another label key replaces the first, it does not add to it
        await api(
            cluster,
            "PATCH",
            route_path(),
            {"metadata": {"annotations": {REGION_LABEL_ANNOTATION: "example.com/dc"}}},
        )
        await eventually(lambda: pod(cluster).get("nodeSelector"), timeout=WATCHED)
        await api(cluster, "PATCH", route_path(), {"metadata": {"annotations": None}})
        await eventually(
            lambda: (
                pod(cluster).get("nodeSelector") == {"topology.kubernetes.io/region": "us-east-1"}
            )
        )


async def test_normalised_defaulted_and_dropped_fields_are_not_drift(cluster: ApiServer) -> None:
    cluster.dropped = {"Service": [("spec", "trafficDistribution")]}  # Kubernetes 1.30
    await seed_secrets(cluster, "ds-us-east-1")
    route = minimal_route(regions=("us-east-1",))
    route["spec"]["resources"] = {
        "requests": {"cpu": "0.5", "memory": "1024Mi"},
        "limits": {"memory": "1536Mi"},
    }
    route["spec"]["autoscaling"] = {"targetP99": "0.5s"}
    await seed_route(cluster, route)
    async with running_operator():
        await eventually(lambda: live(cluster, SERVICES, "chat"))  # the last child applied
        container = pod(cluster)["containers"][0]
        assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
        assert container["terminationMessagePath"] == "/dev/termination-log"  # a default
        assert "trafficDistribution" not in (live(cluster, SERVICES, "chat") or {})["spec"]
        await ready_deployment(cluster, "chat-us-east-1")
        await eventually(lambda: condition(cluster, "Progressing").get("status") == "False")
        first = applies(cluster)
        assert len(first) == 6  # each child once

        # the Deployment's status moves on (every change wakes the route): nothing is applied
        for replicas in (3, 2, 4):
            await ready_deployment(cluster, "chat-us-east-1", replicas)
            await asyncio.sleep(0.2)
        assert applies(cluster) == first
        assert condition(cluster, "Progressing")["status"] == "False"
        assert len([e for e in events(cluster) if e["reason"] == "Applied"]) == 1

    # a restarted operator has no memory of its applies: still nothing to apply
    async with running_operator():
        await eventually(lambda: condition(cluster, "Ready").get("status") == "True")
        await ready_deployment(cluster, "chat-us-east-1", 3)
        await asyncio.sleep(0.5)
        assert applies(cluster) == first


async def test_a_hand_edit_of_an_operator_field_is_repaired_other_fields_are_kept(
    cluster: ApiServer,
) -> None:
    await seed_secrets(cluster, "ds-us-east-1")
    await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    async with running_operator():
        await eventually(lambda: live(cluster, DEPLOYMENTS, "chat-us-east-1"))
        path = f"/apis/apps/v1/namespaces/{NS}/deployments/chat-us-east-1"
        deployment = live(cluster, DEPLOYMENTS, "chat-us-east-1") or {}
        containers = deployment["spec"]["template"]["spec"]["containers"]
        await api(
            cluster,
            "PATCH",
            path,
            {
                # what the HPA and `kubectl annotate` write: not the operator's fields
                "metadata": {"annotations": {"team.example/owner": "ml-platform"}},
                "spec": {
                    "replicas": 5,
                    "template": {"spec": {"containers": [dict(containers[0], image="evil:1")]}},
                },
            },
        )

        def repaired() -> bool:
            """the image is the operator's again"""
            return bool(
                pod(cluster)["containers"][0]["image"] == "registry.example/modelroute:test"
            )

        await eventually(repaired, timeout=WATCHED)
        deployment = live(cluster, DEPLOYMENTS, "chat-us-east-1") or {}
        assert deployment["spec"]["replicas"] == 5
        assert deployment["metadata"]["annotations"]["team.example/owner"] == "ml-platform"


async def test_children_of_the_kopf_based_operator_are_taken_over_field_by_field(
    cluster: ApiServer,
) -> None:
    """The operator before server-side apply created and merge-patched its children as
    field manager "OpenAPI-Generator". Its fields are handed to "modelroute" once, so the
    ones no longer rendered go (the pod annotation it rolled pods with) and the
    annotation removal works on an upgraded cluster too."""
    await seed_secrets(cluster, "ds-us-east-1")
    created = await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    old = render(created, parse_route(created), settings(), NS)
    deployment = next(o for o in old if o["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    template["metadata"]["annotations"]["modelroute.io/config-hash"] = "0123456789abcdef"
    await api(
        cluster,
        "POST",
        f"/apis/apps/v1/namespaces/{NS}/deployments",
        deployment,
        "application/json",
        agent="OpenAPI-Generator/37.0.2/python",
    )
    async with running_operator():
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        annotations = (live(cluster, DEPLOYMENTS, "chat-us-east-1") or {})["spec"]["template"][
            "metadata"
        ]["annotations"]
        assert "modelroute.io/config-hash" not in annotations
        managers = cluster.managers(DEPLOYMENTS, NS, "chat-us-east-1")
        assert not managers.get("OpenAPI-Generator")

        await api(
            cluster,
            "PATCH",
            route_path(),
            {"metadata": {"annotations": {REGION_LABEL_ANNOTATION: ""}}},
        )
        await eventually(lambda: "nodeSelector" not in pod(cluster), timeout=WATCHED)
