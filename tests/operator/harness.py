"""Running the real operator (threads, watches, leader election) against the test API server.

What :class:`~tests.operator.apiserver.ApiServer` still does not do, and so what
the operator tests cannot show: it runs no controllers (Deployments never get
pods: readiness is written into their status by the test) and no admission
other than the faults a test injects; its garbage collector runs at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kubernetes
import pytest
import yaml

from modelroute.operator.kube import Kube, TokenBucket
from modelroute.operator.metrics import OperatorMetrics
from modelroute.operator.runtime import Operator
from modelroute.operator.settings import OperatorSettings, Timing
from tests.operator.apiserver import ApiServer

ROUTES = kmock.resource("modelroute.io/v1alpha1/modelroutes")
SECRETS = kmock.resource("v1/secrets")
CONFIGMAPS = kmock.resource("v1/configmaps")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
SERVICES = kmock.resource("v1/services")
PDBS = kmock.resource("policy/v1/poddisruptionbudgets")
HPAS = kmock.resource("autoscaling/v2/horizontalpodautoscalers")
LEASES = kmock.resource("coordination.k8s.io/v1/leases")
EVENTS = kmock.resource("v1/events")
CRDS = kmock.resource("apiextensions.k8s.io/v1/customresourcedefinitions")
CHILDREN = (CONFIGMAPS, DEPLOYMENTS, SERVICES, PDBS, HPAS)
NS = "ai"
OPERATOR_NS = "modelroute-system"
FAST = Timing(lease_duration=3.0, renew_deadline=2.0, retry_period=0.2)
RESYNC = 30.0
WATCHED = 5.0
"""Seconds within which a change must show: far less than RESYNC, so it came by a watch."""

MARK = pytest.mark.kmock(cls=ApiServer)
"""Every operator test module: ``pytestmark = MARK``."""


def settings(identity: str = "op-a", **changes: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "router_image": "registry.example/modelroute:test",
        "resync_seconds": RESYNC,
        "identity": identity,
        "lease_namespace": OPERATOR_NS,
        "leader_timing": FAST,
        "workers": 2,
    }
    values.update(changes)
    return OperatorSettings(**values)


def setup(
    server: kmock.KubernetesEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Declare the resources and point the ``kubernetes`` package at the server."""
    server.resources.load_bundled()
    server.resources["modelroute.io/v1alpha1/modelroutes"] = kmock.ResourceInfo(
        kind="ModelRoute",
        singular="modelroute",
        namespaced=True,
        verbs={"list", "watch", "get", "patch", "create", "delete"},
        subresources={"status"},
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(server.url)}}],
        "users": [{"name": "test", "user": {"token": "test"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
        "current-context": "kmock",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def agent(identity: str) -> str:
    return f"modelroute-operator/test ({identity})"


@contextlib.asynccontextmanager
async def running_operator(
    operator_settings: OperatorSettings | None = None, wait_leading: bool = True
) -> AsyncIterator[Operator]:
    """An operator process's parts, in this process; stopped (Lease released) on exit."""
    chosen = operator_settings or settings()
    metrics = OperatorMetrics()
    kube = Kube.connect(
        user_agent=agent(chosen.identity),
        on_request=metrics.count_request,
        bucket=TokenBucket(10_000, 10_000),
    )
    operator = Operator(chosen, kube, metrics)
    operator.start()
    try:
        if wait_leading:
            await eventually(lambda: operator.controller is not None and operator.ready()[0])
        yield operator
    finally:
        await asyncio.to_thread(operator.stop)
        kube.close()


async def eventually(check: Callable[[], Any], timeout: float = 8.0) -> Any:
    """Poll ``check`` until it returns something truthy (and return that)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout}s: {check.__doc__ or check}")
        await asyncio.sleep(0.05)


async def api(
    cluster: kmock.KubernetesEmulator,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/merge-patch+json",
    agent: str = "kubectl/v1.37.1",
) -> dict[str, Any]:
    """A client request as kubectl would make it (Connection: close, see KUBERNETES_TESTING.md)."""
    headers = {"Connection": "close", "Content-Type": content_type, "User-Agent": agent}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{cluster.url}{path}", json=body, headers=headers) as response,
    ):
        assert response.status < 300, await response.text()
        result: dict[str, Any] = await response.json()
        return result


def route_path(name: str = "chat", namespace: str = NS) -> str:
    return f"/apis/modelroute.io/v1alpha1/namespaces/{namespace}/modelroutes/{name}"


def live(
    cluster: ApiServer, resource: Any, name: str, namespace: str | None = NS
) -> dict[str, Any] | None:
    return cluster.live(resource, namespace, name)


def names(cluster: kmock.KubernetesEmulator, resource: Any, namespace: str = NS) -> set[str]:
    return {
        name
        for (res, ns, name), obj in cluster.objects.items()
        if res == resource and ns == namespace and not obj.deleted
    }


def config_maps(cluster: kmock.KubernetesEmulator, prefix: str) -> set[str]:
    return {name for name in names(cluster, CONFIGMAPS) if name.startswith(prefix)}


async def seed_route(cluster: ApiServer, route: dict[str, Any]) -> dict[str, Any]:
    """Create a route as ``kubectl apply`` would: the server gives it uid and versions."""
    namespace = route["metadata"].get("namespace", NS)
    return await api(
        cluster,
        "POST",
        f"/apis/modelroute.io/v1alpha1/namespaces/{namespace}/modelroutes",
        route,
        "application/json",
    )


def secret(name: str, data: dict[str, str] | None = None, namespace: str = NS) -> dict[str, Any]:
    values = data or {"apiKey": "sk-test"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    }


async def seed_secrets(cluster: ApiServer, *names_: str, namespace: str = NS) -> None:
    for name in names_:
        await api(
            cluster,
            "POST",
            f"/api/v1/namespaces/{namespace}/secrets",
            secret(name, namespace=namespace),
            "application/json",
        )


def status(cluster: ApiServer, name: str = "chat") -> dict[str, Any]:
    obj = live(cluster, ROUTES, name) or {}
    result: dict[str, Any] = obj.get("status") or {}
    return result


def condition(cluster: ApiServer, type_: str, name: str = "chat") -> dict[str, Any]:
    for entry in status(cluster, name).get("conditions") or []:
        if entry["type"] == type_:
            return dict(entry)
    return {}


def events(cluster: kmock.KubernetesEmulator) -> list[dict[str, Any]]:
    return [
        request.data
        for request in cluster
        if str(request.method.value) == "POST" and request.resource == EVENTS
    ]


async def ready_deployment(cluster: ApiServer, name: str, replicas: int = 2) -> None:
    """What the deployment controller would write once the pods are ready."""
    deployment = live(cluster, DEPLOYMENTS, name) or {}
    generation = deployment["metadata"]["generation"]
    await api(
        cluster,
        "PATCH",
        f"/apis/apps/v1/namespaces/{NS}/deployments/{name}/status",
        {
            "status": {
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
            }
        },
    )


def writes(cluster: kmock.KubernetesEmulator, by: str | None = None) -> list[kmock.Request]:
    """Requests that change the cluster, from operators (or from the one named ``by``)."""
    return [
        r
        for r in cluster
        if str(r.method.value) in ("POST", "PUT", "PATCH", "DELETE")
        and "modelroute-operator" in r.headers.get("User-Agent", "")
        and (by is None or f"({by})" in r.headers.get("User-Agent", ""))
    ]
