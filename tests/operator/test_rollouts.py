"""Safe rollouts: immutable, content-hashed ConfigMaps; defaults never roll the fleet.

A config change is a new ConfigMap and a Deployment rollout (``maxUnavailable:
0``); reverting the spec brings back the previous ConfigMap (kept, with the
previous ReplicaSets); a CRD upgrade whose API server now fills in more
defaults changes no ConfigMap and no Deployment.
"""

from __future__ import annotations

import asyncio

from modelroute.operator.crd import resource_schema
from modelroute.operator.render import REVISION_HISTORY
from tests.operator.apiserver import ApiServer
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    CONFIGMAPS,
    DEPLOYMENTS,
    MARK,
    ROUTES,
    api,
    config_maps,
    eventually,
    live,
    route_path,
    running_operator,
    seed_route,
    seed_secrets,
    status,
    writes,
)
from tests.operator.semantics import structural_defaults

pytestmark = MARK


def config_of(cluster: ApiServer, deployment: str = "chat-us-east-1") -> str:
    volumes = (live(cluster, DEPLOYMENTS, deployment) or {})["spec"]["template"]["spec"]["volumes"]
    return str(next(v["configMap"]["name"] for v in volumes if v["name"] == "config"))


def rollouts(cluster: ApiServer) -> list[str]:
    return [
        f"{w.resource.plural}/{w.name}"
        for w in writes(cluster)
        if w.resource in (CONFIGMAPS, DEPLOYMENTS) and w.subresource is None
    ]


async def test_defaults_added_by_a_crd_upgrade_roll_nothing(cluster: ApiServer) -> None:
    await seed_secrets(cluster, "ds-us-east-1")
    await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    async with running_operator():
        await eventually(lambda: status(cluster).get("observedGeneration") == 1)
        before, config = rollouts(cluster), config_of(cluster)

        # the upgraded CRD declares defaults: the API server now serves the spec with them
        route = live(cluster, ROUTES, "chat") or {}
        spec_schema = resource_schema()["properties"]["spec"]
        defaulted = structural_defaults(route["spec"], spec_schema)
        assert defaulted != route["spec"]
        await api(cluster, "PATCH", route_path(), {"spec": defaulted})
        await eventually(lambda: status(cluster).get("observedGeneration") == 2)
        await asyncio.sleep(0.3)
        assert rollouts(cluster) == before
        assert config_of(cluster) == config


async def test_a_change_rolls_through_a_new_config_map_and_a_revert_brings_the_old_back(
    cluster: ApiServer,
) -> None:
    await seed_secrets(cluster, "ds-us-east-1")
    await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    async with running_operator():
        await eventually(lambda: live(cluster, DEPLOYMENTS, "chat-us-east-1"))
        first = config_of(cluster)
        deployment = live(cluster, DEPLOYMENTS, "chat-us-east-1") or {}
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {
            "maxSurge": "25%",
            "maxUnavailable": 0,
        }
        seen = [first]
        for targets in range(2, REVISION_HISTORY + 4):  # more changes than history kept
            await api(
                cluster,
                "PATCH",
                route_path(),
                {"spec": {"autoscaling": {"targetInFlight": targets * 10}}},
            )
            await eventually(lambda: config_of(cluster) not in seen)
            seen.append(config_of(cluster))
            assert (live(cluster, CONFIGMAPS, seen[-2]) or {}).get("immutable") is True

        kept = set(seen[-(REVISION_HISTORY + 1) :])  # the current one and 5 before it
        await eventually(lambda: config_maps(cluster, "chat-us-east-1-") == kept)

        # revert to the previous spec: the previous ConfigMap, not a new one
        await api(
            cluster,
            "PATCH",
            route_path(),
            {"spec": {"autoscaling": {"targetInFlight": (REVISION_HISTORY + 2) * 10}}},
        )
        await eventually(lambda: config_of(cluster) == seen[-2])
        assert config_maps(cluster, "chat-us-east-1-") == kept
