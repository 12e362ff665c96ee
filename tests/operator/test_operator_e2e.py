"""The real operator (kopf + handlers + API client) against kmock's Kubernetes emulator.

What the emulator does not do, and so what these tests cannot show: it sets no
uid, generation or resourceVersion (seeded here by hand), ignores label
selectors, runs no controllers (Deployments never get pods: readiness is
patched in by the test) and no garbage collector (deletion is checked as
owner references on every child, which is what the real collector follows).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kopf
import kubernetes
import pytest
import yaml

from modelroute.operator.handlers import build_registry
from modelroute.operator.render import CONFIG_HASH_ANNOTATION, render, to_yaml
from modelroute.operator.settings import OperatorSettings
from modelroute.spec import parse_route
from tests.operator.conftest import REPO, minimal_route

ROUTES = kmock.resource("modelroute.io/v1alpha1/modelroutes")
SECRETS = kmock.resource("v1/secrets")
CONFIGMAPS = kmock.resource("v1/configmaps")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
SERVICES = kmock.resource("v1/services")
PDBS = kmock.resource("policy/v1/poddisruptionbudgets")
HPAS = kmock.resource("autoscaling/v2/horizontalpodautoscalers")
CHILDREN = (CONFIGMAPS, DEPLOYMENTS, SERVICES, PDBS, HPAS)
NS = "ai"
UID = "0d1c5a4e-7f0b-4c53-9d1b-0a9e2c1f0001"
SETTINGS = OperatorSettings(router_image="registry.example/modelroute:test", resync_seconds=0.5)


@pytest.fixture
def cluster(
    kmock: kmock.KubernetesEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> kmock.KubernetesEmulator:
    kmock.resources.load_bundled()
    kmock.resources["modelroute.io/v1alpha1/modelroutes"] = kmock.ResourceInfo(
        kind="ModelRoute",
        singular="modelroute",
        namespaced=True,
        verbs={"list", "watch", "get", "patch", "create", "delete"},
        subresources={"status"},
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url)}}],
        "users": [{"name": "test", "user": {"token": "test"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
        "current-context": "kmock",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return kmock


@contextlib.asynccontextmanager
async def running_operator() -> AsyncIterator[None]:
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=build_registry(SETTINGS),
            standalone=True,
            clusterwide=True,
            ready_flag=ready,
            stop_flag=stop,
        )
    )
    await asyncio.wait_for(ready.wait(), timeout=10)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


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


async def api(cluster: kmock.KubernetesEmulator, method: str, path: str, body: Any = None) -> None:
    """A client request as kubectl would make it (Connection: close, see KUBERNETES_TESTING.md)."""
    headers = {"Connection": "close", "Content-Type": "application/merge-patch+json"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{cluster.url}{path}", json=body, headers=headers) as response,
    ):
        assert response.status < 300, await response.text()


def live(cluster: kmock.KubernetesEmulator, resource: Any, name: str) -> dict[str, Any] | None:
    key = (resource, NS, name)
    if key not in cluster.objects or cluster.objects[key].deleted:
        return None
    return dict(cluster.objects[key].raw)


def names(cluster: kmock.KubernetesEmulator, resource: Any) -> set[str]:
    return {
        name
        for (res, namespace, name), obj in cluster.objects.items()
        if res == resource and namespace == NS and not obj.deleted
    }


def seed(
    cluster: kmock.KubernetesEmulator, route: dict[str, Any] | None, secrets: tuple[str, ...]
) -> None:
    for secret in secrets:
        cluster.objects[SECRETS, NS, secret] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": NS},
            "data": {"apiKey": "c2stdGVzdA=="},
        }
    if route is not None:
        route["metadata"].update(uid=UID, generation=1, resourceVersion="1")
        cluster.objects[ROUTES, NS, route["metadata"]["name"]] = route


def status(cluster: kmock.KubernetesEmulator, name: str = "chat") -> dict[str, Any]:
    obj = live(cluster, ROUTES, name) or {}
    result: dict[str, Any] = obj.get("status") or {}
    return result


def condition(cluster: kmock.KubernetesEmulator, type_: str, name: str = "chat") -> dict[str, Any]:
    for entry in status(cluster, name).get("conditions") or []:
        if entry["type"] == type_:
            return dict(entry)
    return {}


def events(cluster: kmock.KubernetesEmulator) -> list[dict[str, Any]]:
    return [
        request.data
        for request in cluster
        if request.method == "POST" and request.resource == kmock.resource("v1/events")
    ]


def config_hash(cluster: kmock.KubernetesEmulator, name: str) -> str:
    deployment = live(cluster, DEPLOYMENTS, name) or {}
    return str(deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION])


async def test_route_lifecycle(cluster: kmock.KubernetesEmulator) -> None:
    seed(cluster, minimal_route(), secrets=("ds-us-east-1", "ds-eu-west-1"))
    async with running_operator():
        # create → every child, per region, plus the route-wide Service
        def all_children() -> bool:
            """all children created"""
            return names(cluster, HPAS) == {"chat-us-east-1", "chat-eu-west-1"} and "chat" in names(
                cluster, SERVICES
            )

        await eventually(all_children)
        assert names(cluster, CONFIGMAPS) == {"chat-us-east-1", "chat-eu-west-1"}
        assert names(cluster, DEPLOYMENTS) == {"chat-us-east-1", "chat-eu-west-1"}
        assert names(cluster, PDBS) == {"chat-us-east-1", "chat-eu-west-1"}
        assert names(cluster, SERVICES) == {"chat", "chat-us-east-1", "chat-eu-west-1"}

        # deletion is the garbage collector's job: every child must point at the route
        for resource in CHILDREN:
            for name in names(cluster, resource):
                refs = (live(cluster, resource, name) or {})["metadata"]["ownerReferences"]
                assert refs == [
                    {
                        "apiVersion": "modelroute.io/v1alpha1",
                        "kind": "ModelRoute",
                        "name": "chat",
                        "uid": UID,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ]

        # status appears: nothing is ready yet (the emulator runs no pods)
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        assert status(cluster)["observedGeneration"] == 1
        assert status(cluster)["readyRegions"] == "0/2"
        assert status(cluster)["models"] == "chat-fast"
        assert condition(cluster, "Progressing")["status"] == "True"
        not_ready_since = condition(cluster, "Ready")["lastTransitionTime"]
        assert any(e["reason"] == "Applied" and e["type"] == "Normal" for e in events(cluster))

        # pods become ready in both regions → Ready flips, per-region counts follow
        for region in ("us-east-1", "eu-west-1"):
            await api(
                cluster,
                "PATCH",
                f"/apis/apps/v1/namespaces/{NS}/deployments/chat-{region}",
                {
                    "metadata": {"generation": 1},
                    "spec": {"replicas": 2},
                    "status": {
                        "observedGeneration": 1,
                        "replicas": 2,
                        "updatedReplicas": 2,
                        "readyReplicas": 2,
                    },
                },
            )
        await eventually(lambda: condition(cluster, "Ready").get("status") == "True")
        assert condition(cluster, "Ready")["reason"] == "AllRegionsReady"
        assert status(cluster)["readyRegions"] == "2/2"
        assert status(cluster)["regions"] == [
            {"name": "us-east-1", "replicas": 2, "readyReplicas": 2},
            {"name": "eu-west-1", "replicas": 2, "readyReplicas": 2},
        ]
        assert condition(cluster, "Ready")["lastTransitionTime"] >= not_ready_since
        ready_since = condition(cluster, "Ready")["lastTransitionTime"]
        await asyncio.sleep(1.2)  # two resyncs without a flip keep the transition time
        assert condition(cluster, "Ready")["lastTransitionTime"] == ready_since

        # spec update → children patched, pods' config hash changes
        old_hash = config_hash(cluster, "chat-us-east-1")
        await api(
            cluster,
            "PATCH",
            f"/apis/modelroute.io/v1alpha1/namespaces/{NS}/modelroutes/chat",
            {
                "metadata": {"generation": 2},
                "spec": {"autoscaling": {"minReplicas": 3, "maxReplicas": 7}},
            },
        )
        await eventually(lambda: config_hash(cluster, "chat-us-east-1") != old_hash)

        def hpa_bounds() -> bool:
            """the eu-west-1 HPA follows the new bounds"""
            spec = (live(cluster, HPAS, "chat-eu-west-1") or {})["spec"]
            return (spec["minReplicas"], spec["maxReplicas"]) == (3, 7)

        await eventually(hpa_bounds)
        route_yaml = (live(cluster, CONFIGMAPS, "chat-us-east-1") or {})["data"]["route.yaml"]
        assert yaml.safe_load(route_yaml)["spec"]["autoscaling"] == {
            "minReplicas": 3,
            "maxReplicas": 7,
        }
        await eventually(lambda: status(cluster).get("observedGeneration") == 2)

        # drift: a deleted child comes back, a hand-edited one is put right
        await api(cluster, "DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/chat-eu-west-1")
        assert "chat-eu-west-1" not in names(cluster, DEPLOYMENTS)
        await eventually(lambda: "chat-eu-west-1" in names(cluster, DEPLOYMENTS))
        await api(
            cluster,
            "PATCH",
            f"/api/v1/namespaces/{NS}/configmaps/chat-us-east-1",
            {"data": {"route.yaml": "hand-edited"}},
        )
        await eventually(
            lambda: (
                (live(cluster, CONFIGMAPS, "chat-us-east-1") or {})["data"]["route.yaml"]
                == route_yaml
            )
        )

        # region removed → that region's children are deleted, the others stay
        route = live(cluster, ROUTES, "chat") or {}
        spec = dict(route["spec"])
        spec["regions"] = [{"name": "us-east-1"}]
        spec["providers"] = [
            dict(spec["providers"][0], endpoints=spec["providers"][0]["endpoints"][:1])
        ]
        await api(
            cluster,
            "PATCH",
            f"/apis/modelroute.io/v1alpha1/namespaces/{NS}/modelroutes/chat",
            {"metadata": {"generation": 3}, "spec": spec},
        )

        def region_gone() -> bool:
            """no child of eu-west-1 is left"""
            return not any(
                name.endswith("eu-west-1") for r in CHILDREN for name in names(cluster, r)
            )

        await eventually(region_gone)
        assert names(cluster, DEPLOYMENTS) == {"chat-us-east-1"}
        assert names(cluster, SERVICES) == {"chat", "chat-us-east-1"}

        # the spec turns invalid (a Secret that does not exist): children left as they were
        before = {
            resource: {n: live(cluster, resource, n) for n in names(cluster, resource)}
            for resource in CHILDREN
        }
        bad = dict(spec)
        bad["providers"] = [
            dict(
                spec["providers"][0],
                endpoints=[
                    dict(
                        spec["providers"][0]["endpoints"][0],
                        apiKeySecretRef={"name": "gone", "key": "apiKey"},
                    )
                ],
            )
        ]
        await api(
            cluster,
            "PATCH",
            f"/apis/modelroute.io/v1alpha1/namespaces/{NS}/modelroutes/chat",
            {"metadata": {"generation": 4}, "spec": bad},
        )
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "InvalidSpec")
        await asyncio.sleep(0.6)  # at least one resync
        after = {
            resource: {n: live(cluster, resource, n) for n in names(cluster, resource)}
            for resource in CHILDREN
        }
        assert after == before
        assert condition(cluster, "Degraded")["status"] == "True"


async def test_invalid_spec_gets_condition_and_event_and_no_children(
    cluster: kmock.KubernetesEmulator,
) -> None:
    seed(cluster, minimal_route(), secrets=("ds-us-east-1",))  # ds-eu-west-1 is missing
    async with running_operator():
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "InvalidSpec")
        ready = condition(cluster, "Ready")
        assert ready["status"] == "False"
        assert "spec.providers[0].endpoints[1].apiKeySecretRef.name" in ready["message"]
        warnings = await eventually(
            lambda: [
                e
                for e in events(cluster)
                if e["type"] == "Warning" and e["reason"] == "InvalidSpec"
            ]
        )
        assert warnings[0]["message"].startswith(
            "spec.providers[0].endpoints[1].apiKeySecretRef.name:"
        )
        assert warnings[0]["involvedObject"]["uid"] == UID
        # The emulator re-sends the object after its initial list, so the first
        # reconcile may run twice before its status lands; after that, resyncs
        # keep the condition but do not repeat the Event.
        await asyncio.sleep(0.5)
        settled = len([e for e in events(cluster) if e["reason"] == "InvalidSpec"])
        assert settled <= 2
        await asyncio.sleep(1.5)
        assert len([e for e in events(cluster) if e["reason"] == "InvalidSpec"]) == settled
        for resource in CHILDREN:
            assert names(cluster, resource) == set(), resource

        # the Secret appears → the next resync applies everything
        seed(cluster, None, secrets=("ds-eu-west-1",))
        await eventually(
            lambda: names(cluster, DEPLOYMENTS) == {"chat-us-east-1", "chat-eu-west-1"}
        )
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")


CANARY = "sk-canary-3b9f0c7e1d5a4862"
CANARY_FORMS = (CANARY, base64.b64encode(CANARY.encode()).decode())  # as read, as stored


def secret_with(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def leaks(text: str) -> list[str]:
    return [form for form in CANARY_FORMS if form in text]


async def test_canary_key_appears_in_no_output_of_the_operator(
    cluster: kmock.KubernetesEmulator,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Provider and client keys: read by the operator (to check the keys exist), and found
    nowhere it writes: children, status, Events, any request body, logs at every level."""
    caplog.set_level(logging.DEBUG)
    route = minimal_route()
    route["spec"]["auth"] = {"keysSecretRef": {"name": "clients", "key": "keys"}}
    broken = minimal_route("broken", regions=("us-east-1",))
    endpoint = broken["spec"]["providers"][0]["endpoints"][0]
    endpoint["apiKeySecretRef"] = {"name": "half", "key": "apiKey"}
    for secret in (
        secret_with("ds-us-east-1", {"apiKey": CANARY}),
        secret_with("ds-eu-west-1", {"apiKey": CANARY + "\n"}),
        secret_with("clients", {"keys": f"team-a: {CANARY}\n"}),
        secret_with("half", {"apiToken": CANARY}),  # not the key the route names
    ):
        cluster.objects[SECRETS, NS, secret["metadata"]["name"]] = secret
    seed(cluster, route, secrets=())
    seed(cluster, broken, secrets=())

    async with running_operator():
        await eventually(lambda: names(cluster, HPAS) == {"chat-us-east-1", "chat-eu-west-1"})
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        await eventually(
            lambda: condition(cluster, "Ready", "broken").get("reason") == "InvalidSpec"
        )
        await eventually(lambda: [e for e in events(cluster) if e["reason"] == "InvalidSpec"])
        await asyncio.sleep(1.2)  # resyncs re-read the Secrets

    requests = list(cluster)
    assert any(r.method == "GET" and r.resource == SECRETS for r in requests), "never read"
    written = [r for r in requests if r.method in ("POST", "PATCH", "PUT")]
    assert {r.resource for r in written} >= {*CHILDREN, ROUTES, kmock.resource("v1/events")}
    stored = {
        f"{key[0]}/{key[1]}/{key[2]}": json.dumps(obj.raw)
        for key, obj in cluster.objects.items()
        if key[0] != SECRETS
    }
    outputs = {
        **{f"request {r.method} {r.url}": str(r.url) + r.text for r in written},
        **stored,
        "logs": "\n".join(record.getMessage() for record in caplog.records),
        "stdout+stderr": "".join(capsys.readouterr()),
        "modelroute render": to_yaml(render(route, parse_route(route), SETTINGS, NS)),
    }
    assert {name: found for name, text in outputs.items() if (found := leaks(text))} == {}
    # The search can find what it looks for, and looked at the right places.
    secret_text = json.dumps(cluster.objects[SECRETS, NS, "ds-us-east-1"].raw)
    assert leaks(secret_text) == [CANARY_FORMS[1]]
    assert 'Secret \\"half\\" has no key \\"apiKey\\"' in stored[f"{ROUTES}/{NS}/broken"]
    assert "ds-eu-west-1" in stored[f"{DEPLOYMENTS}/{NS}/chat-us-east-1"]
    assert len(caplog.records) > 10


async def test_rbac_matches_requests(cluster: kmock.KubernetesEmulator) -> None:
    seed(cluster, minimal_route(), secrets=("ds-us-east-1", "ds-eu-west-1"))
    async with running_operator():
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        route = live(cluster, ROUTES, "chat") or {}
        spec = dict(route["spec"], regions=[{"name": "us-east-1"}])
        spec["providers"] = [
            dict(spec["providers"][0], endpoints=spec["providers"][0]["endpoints"][:1])
        ]
        await api(
            cluster,
            "PATCH",
            f"/apis/modelroute.io/v1alpha1/namespaces/{NS}/modelroutes/chat",
            {"spec": spec},
        )
        await eventually(lambda: names(cluster, DEPLOYMENTS) == {"chat-us-east-1"})

    granted = granted_verbs()
    used: set[tuple[str, str, str]] = set()
    for request in cluster:
        if request.resource is None or request.headers.get("Connection") == "close":
            continue  # discovery, or the test's own client
        assert request.action is not None
        verb = VERBS[request.action.name]
        if request.resource.plural is None:
            continue  # API discovery: allowed to every authenticated user
        resource = request.resource.plural + (
            f"/{request.subresource}" if request.subresource else ""
        )
        used.add((request.resource.group or "", resource, verb))
    denied = {entry for entry in used if entry not in granted}
    assert not denied, f"requests the ClusterRole does not allow: {sorted(denied)}"
    assert granted - used == NOT_EXERCISED_HERE


NOT_EXERCISED_HERE = {
    ("", "namespaces", "list"),  # kopf, only when run with --namespace
    ("", "namespaces", "watch"),
    (
        "modelroute.io",
        "modelroutes/finalizers",
        "update",
    ),  # checked by the API server for blockOwnerDeletion
    ("", "services", "patch"),  # drift repair of a hand-edited child
    ("policy", "poddisruptionbudgets", "patch"),
    ("autoscaling", "horizontalpodautoscalers", "patch"),
}


VERBS = {
    "LIST": "list",
    "WATCH": "watch",
    "FETCH": "get",
    "CREATE": "create",
    "UPDATE": "patch",
    "DELETE": "delete",
}


def granted_verbs() -> set[tuple[str, str, str]]:
    documents = yaml.safe_load_all((REPO / "manifests" / "20-rbac.yaml").read_text())
    (role,) = [doc for doc in documents if doc["kind"] == "ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
