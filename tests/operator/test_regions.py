"""One cluster per region (``--region``) or one stretched cluster (no flag).

Per-region clusters each hold a copy of the same ModelRoute (the spec lists
every region: failover crosses them); each cluster's operator runs the routers
of its own region only, and its copy's status reports that region only.
"""

from __future__ import annotations

from tests.operator.apiserver import ApiServer
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    CHILDREN,
    DEPLOYMENTS,
    MARK,
    SERVICES,
    condition,
    eventually,
    names,
    ready_deployment,
    running_operator,
    seed_route,
    seed_secrets,
    settings,
    status,
    writes,
)

pytestmark = MARK


async def test_an_operator_serving_one_region_renders_and_reports_only_it(
    cluster: ApiServer,
) -> None:
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    await seed_route(cluster, minimal_route())  # lists us-east-1 and eu-west-1
    async with running_operator(settings(regions=frozenset({"us-east-1"}))):
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        assert names(cluster, DEPLOYMENTS) == {"chat-us-east-1"}
        assert names(cluster, SERVICES) == {"chat", "chat-us-east-1"}
        assert status(cluster)["readyRegions"] == "0/1"
        assert condition(cluster, "Ready")["message"] == "no ready router in: us-east-1"

        await ready_deployment(cluster, "chat-us-east-1")
        await eventually(lambda: condition(cluster, "Ready").get("status") == "True")
        assert status(cluster)["readyRegions"] == "1/1"
        assert status(cluster)["regions"] == [
            {"name": "us-east-1", "replicas": 2, "readyReplicas": 2}
        ]
        assert condition(cluster, "Ready")["message"] == (
            "routers ready in us-east-1 (served by other clusters: eu-west-1)"
        )


async def test_a_route_with_no_region_here_is_reported_and_touches_nothing(
    cluster: ApiServer,
) -> None:
    await seed_secrets(cluster, "ds-eu-west-1")
    await seed_route(cluster, minimal_route(regions=("eu-west-1",)))
    async with running_operator(settings(regions=frozenset({"us-east-1"}))):
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "NoServedRegion")
        assert condition(cluster, "Ready")["message"] == (
            "this operator serves us-east-1; the route lists eu-west-1"
        )
        assert all(names(cluster, resource) == set() for resource in CHILDREN)
        assert {w.subresource for w in writes(cluster) if w.resource in CHILDREN} == set()


async def test_a_stretched_cluster_operator_moving_to_one_region_prunes_the_others(
    cluster: ApiServer,
) -> None:
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    await seed_route(cluster, minimal_route())
    async with running_operator(settings()):
        await eventually(
            lambda: names(cluster, DEPLOYMENTS) == {"chat-us-east-1", "chat-eu-west-1"}
        )
        await eventually(lambda: status(cluster).get("readyRegions") == "0/2")
    async with running_operator(settings(regions=frozenset({"eu-west-1"}))):
        await eventually(lambda: names(cluster, DEPLOYMENTS) == {"chat-eu-west-1"})
        await eventually(lambda: status(cluster).get("readyRegions") == "0/1")
        assert not any("us-east-1" in n for resource in CHILDREN for n in names(cluster, resource))
