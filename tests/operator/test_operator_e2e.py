"""The real operator (leader election, watches, workers, API client) against the test API server.

A route's whole life: create, status following the Deployments within seconds
(no resync: the resync period here is longer than every test), a spec change
rolling out through a new ConfigMap, drift repaired from watch events, a
region removed, the spec turning invalid. See :mod:`tests.operator.harness`
for what the test API server does not do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import kmock
import pytest
import yaml

from modelroute.operator.render import render, to_yaml
from modelroute.spec import parse_route
from tests.operator.apiserver import ApiServer
from tests.operator.conftest import REPO, minimal_route
from tests.operator.harness import (
    CHILDREN,
    CONFIGMAPS,
    DEPLOYMENTS,
    EVENTS,
    HPAS,
    LEASES,
    MARK,
    NS,
    PDBS,
    ROUTES,
    SECRETS,
    SERVICES,
    WATCHED,
    api,
    condition,
    config_maps,
    events,
    eventually,
    live,
    names,
    ready_deployment,
    route_path,
    running_operator,
    secret,
    seed_route,
    seed_secrets,
    settings,
    status,
)

pytestmark = MARK


def config_map_of(cluster: ApiServer, deployment: str) -> str:
    obj = live(cluster, DEPLOYMENTS, deployment) or {}
    volumes = obj["spec"]["template"]["spec"]["volumes"]
    (config,) = [v["configMap"]["name"] for v in volumes if v["name"] == "config"]
    return str(config)


async def test_route_lifecycle(cluster: ApiServer) -> None:
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    created = await seed_route(cluster, minimal_route())
    uid = created["metadata"]["uid"]
    async with running_operator():
        # create → every child, per region, plus the route-wide Service
        def all_children() -> bool:
            """all children created"""
            return names(cluster, HPAS) == {"chat-us-east-1", "chat-eu-west-1"} and "chat" in names(
                cluster, SERVICES
            )

        await eventually(all_children)
        assert len(config_maps(cluster, "chat-us-east-1-")) == 1
        assert len(config_maps(cluster, "chat-eu-west-1-")) == 1
        assert names(cluster, DEPLOYMENTS) == {"chat-us-east-1", "chat-eu-west-1"}
        assert names(cluster, PDBS) == {"chat-us-east-1", "chat-eu-west-1"}
        assert names(cluster, SERVICES) == {"chat", "chat-us-east-1", "chat-eu-west-1"}

        # deletion is the garbage collector's job: every child points at the route,
        # and the route carries no finalizer
        for resource in CHILDREN:
            for name in names(cluster, resource):
                refs = (live(cluster, resource, name) or {})["metadata"]["ownerReferences"]
                assert refs == [
                    {
                        "apiVersion": "modelroute.io/v1alpha1",
                        "kind": "ModelRoute",
                        "name": "chat",
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ]
        assert not (live(cluster, ROUTES, "chat") or {})["metadata"].get("finalizers")

        # status appears: nothing is ready yet (the test API server runs no pods)
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        assert status(cluster)["observedGeneration"] == 1
        assert status(cluster)["readyRegions"] == "0/2"
        assert status(cluster)["models"] == "chat-fast"
        assert condition(cluster, "Progressing")["status"] == "True"
        not_ready_since = condition(cluster, "Ready")["lastTransitionTime"]
        await eventually(lambda: any(e["reason"] == "Applied" for e in events(cluster)))

        # pods become ready → Ready flips within a second: a watch, not a resync
        for region in ("us-east-1", "eu-west-1"):
            await ready_deployment(cluster, f"chat-{region}")
        await eventually(
            lambda: condition(cluster, "Ready").get("status") == "True", timeout=WATCHED
        )
        assert condition(cluster, "Ready")["reason"] == "AllRegionsReady"
        assert status(cluster)["readyRegions"] == "2/2"
        assert status(cluster)["regions"] == [
            {"name": "us-east-1", "replicas": 2, "readyReplicas": 2},
            {"name": "eu-west-1", "replicas": 2, "readyReplicas": 2},
        ]
        assert condition(cluster, "Ready")["lastTransitionTime"] >= not_ready_since
        assert condition(cluster, "Progressing")["status"] == "False"

        # spec update → a new ConfigMap, the Deployment moves to it, the old one is kept
        old_config = config_map_of(cluster, "chat-us-east-1")
        await api(
            cluster,
            "PATCH",
            route_path(),
            {"spec": {"autoscaling": {"minReplicas": 3, "maxReplicas": 7}}},
        )
        await eventually(lambda: config_map_of(cluster, "chat-us-east-1") != old_config)
        new_config = config_map_of(cluster, "chat-us-east-1")
        assert config_maps(cluster, "chat-us-east-1-") == {old_config, new_config}
        route_yaml = (live(cluster, CONFIGMAPS, new_config) or {})["data"]["route.yaml"]
        assert yaml.safe_load(route_yaml)["spec"]["autoscaling"] == {
            "minReplicas": 3,
            "maxReplicas": 7,
        }
        assert (live(cluster, CONFIGMAPS, new_config) or {})["immutable"] is True

        def hpa_bounds() -> bool:
            """the eu-west-1 HPA follows the new bounds"""
            spec = (live(cluster, HPAS, "chat-eu-west-1") or {})["spec"]
            return (spec["minReplicas"], spec["maxReplicas"]) == (3, 7)

        await eventually(hpa_bounds)
        await eventually(lambda: status(cluster).get("observedGeneration") == 2)
        await eventually(lambda: condition(cluster, "Progressing").get("status") == "True")

        # drift: a deleted child comes back, a hand-edited one is put right (watch events)
        await api(cluster, "DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/chat-eu-west-1")
        await eventually(lambda: "chat-eu-west-1" in names(cluster, DEPLOYMENTS), timeout=WATCHED)
        await api(
            cluster,
            "PATCH",
            f"/api/v1/namespaces/{NS}/services/chat",
            {"spec": {"selector": {"modelroute.io/route": "hijacked"}}},
        )

        def selector_repaired() -> bool:
            """the route-wide Service selects the route's routers again"""
            spec = (live(cluster, SERVICES, "chat") or {})["spec"]
            return bool(spec["selector"]["modelroute.io/route"] == "chat")

        await eventually(selector_repaired, timeout=WATCHED)

        # region removed → that region's children are deleted, the others stay
        route = live(cluster, ROUTES, "chat") or {}
        spec = dict(route["spec"])
        spec["regions"] = [{"name": "us-east-1"}]
        spec["providers"] = [
            dict(spec["providers"][0], endpoints=spec["providers"][0]["endpoints"][:1])
        ]
        await api(cluster, "PATCH", route_path(), {"spec": spec})

        def region_gone() -> bool:
            """no child of eu-west-1 is left"""
            return not any("eu-west-1" in name for r in CHILDREN for name in names(cluster, r))

        await eventually(region_gone)
        assert names(cluster, DEPLOYMENTS) == {"chat-us-east-1"}
        assert names(cluster, SERVICES) == {"chat", "chat-us-east-1"}

        # the spec turns invalid (a Secret that does not exist): children left as they were
        await eventually(lambda: status(cluster).get("readyRegions") == "1/1")
        before = {r: {n: live(cluster, r, n) for n in names(cluster, r)} for r in CHILDREN}
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
        await api(cluster, "PATCH", route_path(), {"spec": bad})
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "InvalidSpec")
        await asyncio.sleep(0.3)
        after = {r: {n: live(cluster, r, n) for n in names(cluster, r)} for r in CHILDREN}
        assert after == before
        assert condition(cluster, "Degraded")["status"] == "True"
        assert status(cluster)["readyRegions"] == "1/1"  # as last observed


async def test_invalid_spec_gets_condition_and_event_and_no_children(
    cluster: ApiServer,
) -> None:
    await seed_secrets(cluster, "ds-us-east-1")  # ds-eu-west-1 is missing
    created = await seed_route(cluster, minimal_route())
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
        assert warnings[0]["involvedObject"]["uid"] == created["metadata"]["uid"]
        await asyncio.sleep(0.5)  # more reconciles (status writes) do not repeat the Event
        assert len([e for e in events(cluster) if e["reason"] == "InvalidSpec"]) == 1
        for resource in CHILDREN:
            assert names(cluster, resource) == set(), resource

        # the Secret appears → applied within a second (the Secret watch, not a resync)
        await seed_secrets(cluster, "ds-eu-west-1")
        await eventually(
            lambda: names(cluster, DEPLOYMENTS) == {"chat-us-east-1", "chat-eu-west-1"},
            timeout=WATCHED,
        )
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")

        # and deleting it shows in status within a second; the routers stay
        await api(cluster, "DELETE", f"/api/v1/namespaces/{NS}/secrets/ds-eu-west-1")
        await eventually(
            lambda: condition(cluster, "Ready").get("reason") == "InvalidSpec", WATCHED
        )
        assert names(cluster, DEPLOYMENTS) == {"chat-us-east-1", "chat-eu-west-1"}


CANARY = "sk-canary-3b9f0c7e1d5a4862"
CANARY_FORMS = (CANARY, base64.b64encode(CANARY.encode()).decode())  # as read, as stored


def leaks(text: str) -> list[str]:
    return [form for form in CANARY_FORMS if form in text]


async def test_canary_key_appears_in_no_output_of_the_operator(
    cluster: ApiServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Provider and client keys: watched by the operator (to check the keys exist), and
    found nowhere it writes: children, status, Events, any request body, logs at every level."""
    caplog.set_level(logging.DEBUG)
    route = minimal_route()
    route["spec"]["auth"] = {"keysSecretRef": {"name": "clients", "key": "keys"}}
    broken = minimal_route("broken", regions=("us-east-1",))
    endpoint = broken["spec"]["providers"][0]["endpoints"][0]
    endpoint["apiKeySecretRef"] = {"name": "half", "key": "apiKey"}
    for name, data in (
        ("ds-us-east-1", {"apiKey": CANARY}),
        ("ds-eu-west-1", {"apiKey": CANARY + "\n"}),
        ("clients", {"keys": f"team-a: {CANARY}\n"}),
        ("half", {"apiToken": CANARY}),  # not the key the route names
    ):
        await api(
            cluster,
            "POST",
            f"/api/v1/namespaces/{NS}/secrets",
            secret(name, data),
            "application/json",
        )
    await seed_route(cluster, route)
    await seed_route(cluster, broken)

    async with running_operator() as operator:
        await eventually(lambda: names(cluster, HPAS) == {"chat-us-east-1", "chat-eu-west-1"})
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        await eventually(
            lambda: condition(cluster, "Ready", "broken").get("reason") == "InvalidSpec"
        )
        await eventually(lambda: [e for e in events(cluster) if e["reason"] == "InvalidSpec"])
        assert operator.controller is not None
        cached = json.dumps([i.items() for i in operator.controller.secrets.values()])

    requests = list(cluster)
    assert any(r.resource == SECRETS and r.params.get("watch") for r in requests), "never watched"
    written = [r for r in requests if str(r.method.value) in ("POST", "PATCH", "PUT")]
    assert {r.resource for r in written} >= {*CHILDREN, ROUTES, EVENTS, LEASES}
    stored = {
        f"{key[0]}/{key[1]}/{key[2]}": json.dumps(obj.raw)
        for key, obj in cluster.objects.items()
        if key[0] != SECRETS
    }
    outputs = {
        **{
            f"request {r.method} {r.url}": str(r.url) + r.text
            for r in written
            if r.resource != SECRETS
        },
        **stored,
        "the operator's Secret cache": cached,
        "logs": "\n".join(record.getMessage() for record in caplog.records),
        "stdout+stderr": "".join(capsys.readouterr()),
        "modelroute render": to_yaml(render(route, parse_route(route), settings(), NS)),
    }
    assert {name: found for name, text in outputs.items() if (found := leaks(text))} == {}
    # The search can find what it looks for, and looked at the right places.
    secret_text = json.dumps(cluster.objects[SECRETS, NS, "ds-us-east-1"].raw)
    assert leaks(secret_text) == [CANARY_FORMS[1]]
    assert '"apiToken"' in cached
    assert 'Secret \\"half\\" has no key \\"apiKey\\"' in stored[f"{ROUTES}/{NS}/broken"]
    assert "ds-eu-west-1" in stored[f"{DEPLOYMENTS}/{NS}/chat-us-east-1"]
    assert len(caplog.records) > 5


async def test_rbac_matches_requests(cluster: ApiServer) -> None:
    """Every request the operator makes is allowed by the manifests' RBAC, and every rule
    granted is used (or named below with the reason it is not exercised here)."""
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    await seed_route(cluster, minimal_route())
    async with running_operator():
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        route = live(cluster, ROUTES, "chat") or {}
        spec = dict(route["spec"], regions=[{"name": "us-east-1"}])
        spec["providers"] = [
            dict(spec["providers"][0], endpoints=spec["providers"][0]["endpoints"][:1])
        ]
        await api(cluster, "PATCH", route_path(), {"spec": spec})
        await eventually(
            lambda: not any("eu-west-1" in n for r in CHILDREN for n in names(cluster, r))
        )

    granted = granted_verbs()
    used: set[tuple[str, str, str, str]] = set()
    for request in cluster:
        if "modelroute-operator" not in request.headers.get("User-Agent", ""):
            continue  # the test's own client
        if request.resource is None or request.resource.plural is None:
            continue  # API discovery: allowed to every authenticated user
        resource = request.resource.plural + (
            f"/{request.subresource}" if request.subresource else ""
        )
        scope = "namespace" if request.resource.group == "coordination.k8s.io" else "cluster"
        for verb in verbs_of(request):
            used.add((scope, request.resource.group or "", resource, verb))
    denied = {entry for entry in used if entry not in granted}
    assert not denied, f"requests the RBAC does not allow: {sorted(denied)}"
    assert granted - used == NOT_EXERCISED_HERE


NOT_EXERCISED_HERE = {
    # checked by the API server for blockOwnerDeletion on the children
    ("cluster", "modelroute.io", "modelroutes/finalizers", "update"),
    # kopf's finalizer on routes from before this operator (tests/operator/test_uninstall.py)
    ("cluster", "modelroute.io", "modelroutes", "patch"),
}


def verbs_of(request: kmock.Request) -> list[str]:
    """The RBAC verbs the API server checks for ``request``."""
    method = str(request.method.value)
    if method == "GET":
        if request.params.get("watch") == "true":
            return ["watch"]
        return ["get"] if request.name else ["list"]
    if method == "PATCH" and request.headers.get("Content-Type", "").startswith(
        "application/apply-patch"
    ):
        return ["patch", "create"]  # an apply that creates is authorised as create too
    return {"POST": ["create"], "PUT": ["update"], "PATCH": ["patch"], "DELETE": ["delete"]}[method]


def granted_verbs() -> set[tuple[str, str, str, str]]:
    """(scope, group, resource, verb): the ClusterRole's, and the Role's in the operator's
    own namespace."""
    documents = list(yaml.safe_load_all((REPO / "manifests" / "20-rbac.yaml").read_text()))
    roles = [d for d in documents if d["kind"] in ("ClusterRole", "Role")]
    return {
        ("cluster" if role["kind"] == "ClusterRole" else "namespace", group, resource, verb)
        for role in roles
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
