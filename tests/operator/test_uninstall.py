"""The uninstall path, walked: with the operator stopped, routes and the CRD delete cleanly.

Nothing needs a finalizer: owner references let the garbage collector remove
the children. Routes created by the kopf-based operator of earlier versions
carry kopf's finalizer (and a deletion would hang without an operator to
remove it); the operator removes it, and kopf's annotations, on first sight.

The steps are the README's:

    helm uninstall modelroute -n modelroute-system     # the operator stops
    kubectl delete modelroutes --all -A                # optional: the CRD takes them along
    kubectl delete crd modelroutes.modelroute.io
"""

from __future__ import annotations

from modelroute.operator.controller import LEGACY_FINALIZER
from modelroute.operator.crd import custom_resource_definition
from tests.operator.apiserver import ApiServer
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    CHILDREN,
    CRDS,
    DEPLOYMENTS,
    MARK,
    ROUTES,
    api,
    condition,
    eventually,
    live,
    names,
    route_path,
    running_operator,
    seed_route,
    seed_secrets,
)

pytestmark = MARK
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def test_uninstall_with_the_operator_stopped(cluster: ApiServer) -> None:
    await api(cluster, "POST", CRD_PATH, custom_resource_definition(), "application/json")
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    legacy = minimal_route("legacy")
    legacy["metadata"]["finalizers"] = [LEGACY_FINALIZER]
    legacy["metadata"]["annotations"] = {
        "modelroute.io/last-handled-configuration": '{"spec": {}}',
        "modelroute.io/resync": '{"started": "2025-01-01T00:00:00Z"}',
        "keep.example/mine": "yes",
    }
    await seed_route(cluster, legacy)
    await seed_route(cluster, minimal_route("chat"))

    async with running_operator():
        await eventually(
            lambda: condition(cluster, "Ready", "chat").get("reason") == "RegionsNotReady"
        )
        await eventually(
            lambda: condition(cluster, "Ready", "legacy").get("reason") == "RegionsNotReady"
        )
        for name in ("chat", "legacy"):
            metadata = (live(cluster, ROUTES, name) or {})["metadata"]
            assert not metadata.get("finalizers"), name
            assert metadata.get("annotations", {}) == (
                {"keep.example/mine": "yes"} if name == "legacy" else {}
            )
        assert names(cluster, DEPLOYMENTS) == {
            f"{route}-{region}"
            for route in ("chat", "legacy")
            for region in ("us-east-1", "eu-west-1")
        }
    # helm uninstall: the operator is gone

    # a route deletes at once, its children with it (garbage collection)
    await api(cluster, "DELETE", route_path("legacy"))
    assert live(cluster, ROUTES, "legacy") is None
    assert not any(n.startswith("legacy") for r in CHILDREN for n in names(cluster, r))

    # the CRD deletes at once, taking the remaining route and its children along
    await api(cluster, "DELETE", f"{CRD_PATH}/modelroutes.modelroute.io")
    assert live(cluster, CRDS, "modelroutes.modelroute.io", namespace=None) is None
    assert names(cluster, ROUTES) == set()
    assert all(names(cluster, resource) == set() for resource in CHILDREN)


async def test_the_test_server_does_hang_on_a_finalizer(cluster: ApiServer) -> None:
    """Guard: without the operator's migration, the same deletion would not complete."""
    await api(cluster, "POST", CRD_PATH, custom_resource_definition(), "application/json")
    legacy = minimal_route("legacy")
    legacy["metadata"]["finalizers"] = [LEGACY_FINALIZER]
    await seed_route(cluster, legacy)
    await api(cluster, "DELETE", f"{CRD_PATH}/modelroutes.modelroute.io")
    assert (live(cluster, ROUTES, "legacy") or {})["metadata"]["deletionTimestamp"]
    crd = live(cluster, CRDS, "modelroutes.modelroute.io", namespace=None)
    assert crd is not None and crd["metadata"]["deletionTimestamp"]
