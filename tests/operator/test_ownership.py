"""Owned names: a child name held by someone else is reported, never taken over.

Route ``chat`` in region ``us-east-1`` and route ``chat-us`` in region ``east-1``
both spell ``chat-us-east-1``. The first to create it owns it; the second gets
``Ready=False``/``NameConflict`` and a Warning Event naming the object, and
writes nothing at all until the name is free.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.operator.apiserver import ApiServer
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    CHILDREN,
    DEPLOYMENTS,
    MARK,
    NS,
    SERVICES,
    api,
    condition,
    events,
    eventually,
    live,
    names,
    route_path,
    running_operator,
    seed_route,
    seed_secrets,
    writes,
)

pytestmark = MARK


def chat_us() -> dict[str, Any]:
    route = minimal_route("chat-us", regions=("east-1",))
    route["spec"]["providers"][0]["endpoints"][0]["apiKeySecretRef"]["name"] = "ds-us-east-1"
    return route


def owners(cluster: ApiServer) -> dict[tuple[str, str], str]:
    return {
        (str(resource.plural), name): (live(cluster, resource, name) or {})["metadata"][
            "ownerReferences"
        ][0]["name"]
        for resource in CHILDREN
        for name in names(cluster, resource)
    }


async def test_two_routes_spelling_the_same_child_name_do_not_fight(cluster: ApiServer) -> None:
    await seed_secrets(cluster, "ds-us-east-1")
    await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    async with running_operator():
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        before = owners(cluster)
        assert before[("deployments", "chat-us-east-1")] == "chat"

        created = await seed_route(cluster, chat_us())
        await eventually(
            lambda: condition(cluster, "Ready", "chat-us").get("reason") == "NameConflict"
        )
        ready = condition(cluster, "Ready", "chat-us")
        assert ready["status"] == "False"
        assert (
            'Deployment "chat-us-east-1" already exists and is controlled by ModelRoute "chat"'
            in (ready["message"])
        )

        def conflict_events() -> list[dict[str, Any]]:
            """one Warning per name taken: Deployment, Service, PDB and HPA chat-us-east-1"""
            found = [
                e
                for e in events(cluster)
                if e["reason"] == "NameConflict" and e["involvedObject"]["name"] == "chat-us"
            ]
            return found if len(found) >= 4 else []

        warnings = await eventually(conflict_events)
        assert len(warnings) == 4
        assert all(e["type"] == "Warning" for e in warnings)
        assert any('Service "chat-us-east-1"' in e["message"] for e in warnings)
        assert all(e["involvedObject"]["uid"] == created["metadata"]["uid"] for e in warnings)

        # nothing of chat-us was written, nothing of chat changed hands, and it stays so
        count = len(writes(cluster))
        await asyncio.sleep(1.0)
        applied = [w for w in writes(cluster) if "apply-patch" in w.headers.get("Content-Type", "")]
        assert not [
            w for w in applied if w.data["metadata"]["ownerReferences"][0]["name"] == "chat-us"
        ]
        assert owners(cluster) == before
        later = writes(cluster)[count:]  # lease renewals only: no fight, no retried status
        assert {(w.resource.plural if w.resource else None) for w in later} <= {"leases"}

        # the name is freed (chat deleted, its children collected) → chat-us takes it
        await api(cluster, "DELETE", route_path("chat"))
        await eventually(
            lambda: condition(cluster, "Ready", "chat-us").get("reason") == "RegionsNotReady"
        )
        assert owners(cluster)[("deployments", "chat-us-east-1")] == "chat-us"


async def test_an_object_not_managed_by_modelroute_is_never_taken_over(cluster: ApiServer) -> None:
    """A user's own Service with the route's name: no label, no owner."""
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "chat", "namespace": NS, "labels": {"team": "web"}},
        "spec": {"selector": {"app": "legacy-chat"}, "ports": [{"port": 80}]},
    }
    await api(cluster, "POST", f"/api/v1/namespaces/{NS}/services", theirs, "application/json")
    await seed_secrets(cluster, "ds-us-east-1")
    await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    async with running_operator():
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "NameConflict")
        assert (
            'Service "chat" already exists and is not controlled by any ModelRoute'
            in (condition(cluster, "Ready")["message"])
        )
        service = live(cluster, SERVICES, "chat") or {}
        assert service["spec"]["selector"] == {"app": "legacy-chat"}
        assert "ownerReferences" not in service["metadata"]
        assert names(cluster, DEPLOYMENTS) == set()  # no half-applied route
