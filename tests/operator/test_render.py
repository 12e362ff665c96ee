"""Rendering is pure: a ModelRoute in, the exact child objects out."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml

from modelroute.operator.crd import resource_schema
from modelroute.operator.render import (
    REGION_LABEL_ANNOTATION,
    config_map_name,
    quantity,
    render,
    route_config,
    to_yaml,
    without_defaults,
)
from modelroute.operator.settings import OperatorSettings
from modelroute.spec import parse_route
from tests.operator.conftest import SETTINGS, minimal_route
from tests.operator.semantics import structural_defaults

Objects = dict[tuple[str, str], dict[str, Any]]


def rendered(
    document: dict[str, Any], namespace: str = "ai", settings: OperatorSettings = SETTINGS
) -> Objects:
    objects = render(document, parse_route(document), settings, namespace)
    by_key = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    assert len(by_key) == len(objects), "two objects share a kind and name"
    return by_key


def pod(objects: Objects, name: str = "chat-us-east-1") -> dict[str, Any]:
    spec: dict[str, Any] = objects["Deployment", name]["spec"]["template"]["spec"]
    return spec


def container(objects: Objects, name: str = "chat-us-east-1") -> dict[str, Any]:
    (only,) = pod(objects, name)["containers"]
    result: dict[str, Any] = only
    return result


def config_name(objects: Objects, region: str = "us-east-1") -> str:
    (name,) = [n for kind, n in objects if kind == "ConfigMap" and n.startswith(f"chat-{region}-")]
    return name


def test_one_set_of_children_per_region_plus_a_route_service(route: dict[str, Any]) -> None:
    objects = rendered(route)
    config = route_config(route, "ai")
    assert sorted(objects) == sorted(
        [
            (kind, f"chat-{region}")
            for region in ("us-east-1", "eu-west-1")
            for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler")
        ]
        + [("ConfigMap", config_map_name("chat", r, config)) for r in ("us-east-1", "eu-west-1")]
        + [("Service", "chat")]
    )
    assert config_name(objects).startswith("chat-us-east-1-") and len(config_name(objects)) == 25


def test_an_operator_serving_some_regions_renders_only_those(route: dict[str, Any]) -> None:
    one = OperatorSettings(router_image=SETTINGS.router_image, regions=frozenset({"eu-west-1"}))
    assert {name for _, name in rendered(route, settings=one)} == {
        "chat",
        "chat-eu-west-1",
        config_name(rendered(route), "eu-west-1"),
    }
    none = OperatorSettings(regions=frozenset({"ap-south-1"}))
    assert render(route, parse_route(route), none, "ai") == []


def test_every_object_is_in_the_route_namespace(route: dict[str, Any]) -> None:
    assert {obj["metadata"]["namespace"] for obj in rendered(route, "team-a").values()} == {
        "team-a"
    }


def test_labels(route: dict[str, Any]) -> None:
    objects = rendered(route)
    labels = objects["Deployment", "chat-eu-west-1"]["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "modelroute",
        "app.kubernetes.io/instance": "chat",
        "app.kubernetes.io/component": "router",
        "app.kubernetes.io/managed-by": "modelroute-operator",
        "modelroute.io/route": "chat",
        "modelroute.io/region": "eu-west-1",
    }
    assert "modelroute.io/region" not in objects["Service", "chat"]["metadata"]["labels"]


def test_route_service_spans_regions_and_prefers_close_endpoints(route: dict[str, Any]) -> None:
    spec = rendered(route)["Service", "chat"]["spec"]
    assert spec["trafficDistribution"] == "PreferClose"
    assert spec["selector"] == {
        "app.kubernetes.io/component": "router",
        "modelroute.io/route": "chat",
    }
    # the clients' Service: the API only, never the admin port
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_region_service_adds_the_admin_port_for_scraping(route: dict[str, Any]) -> None:
    ports = rendered(route)["Service", "chat-us-east-1"]["spec"]["ports"]
    assert ports == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
        {"name": "admin", "port": 9090, "targetPort": "admin", "protocol": "TCP"},
    ]


def test_region_service_selects_only_its_region(route: dict[str, Any]) -> None:
    objects = rendered(route)
    selector = objects["Service", "chat-eu-west-1"]["spec"]["selector"]
    assert selector["modelroute.io/region"] == "eu-west-1"
    assert "trafficDistribution" not in objects["Service", "chat-eu-west-1"]["spec"]
    deployment = objects["Deployment", "chat-eu-west-1"]["spec"]
    assert deployment["selector"]["matchLabels"] == selector
    assert selector.items() <= deployment["template"]["metadata"]["labels"].items()


def test_configmap_holds_the_manifest_without_status_or_metadata_noise(
    route: dict[str, Any],
) -> None:
    route["metadata"].update(uid="u-1", resourceVersion="7", annotations={"a": "b"})
    route["status"] = {"observedGeneration": 3}
    objects = rendered(route)
    config_map = objects["ConfigMap", config_name(objects)]
    assert config_map["immutable"] is True
    config = yaml.safe_load(config_map["data"]["route.yaml"])
    assert config == {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "chat", "namespace": "ai"},
        "spec": route["spec"],
    }
    assert parse_route(config).spec == parse_route(route).spec


def test_the_deployment_mounts_its_regions_config_map(route: dict[str, Any]) -> None:
    objects = rendered(route)
    volumes = {v["name"]: v for v in pod(objects, "chat-eu-west-1")["volumes"]}
    assert volumes["config"]["configMap"] == {"name": config_name(objects, "eu-west-1")}


def test_route_yaml_leaves_out_defaults_and_sorts_keys(route: dict[str, Any]) -> None:
    route["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 12}  # 2 is the default
    route["spec"]["resilience"] = {"retries": {"attempts": 2}}  # all defaults
    text = route_config(route, "ai")
    config = yaml.safe_load(text)
    assert config["spec"]["autoscaling"] == {"maxReplicas": 12}
    assert "resilience" not in config["spec"]
    assert list(config["spec"]) == sorted(config["spec"])
    assert parse_route(config).spec == parse_route(route).spec


def test_container_contract_with_the_router(route: dict[str, Any]) -> None:
    router = container(rendered(route))
    assert router["image"] == "registry.example/modelroute:test"
    assert router["args"] == [
        "router",
        "--config",
        "/etc/modelroute/route.yaml",
        "--host",
        "0.0.0.0",  # reachable through the pod IP, not only loopback
        "--port",
        "8080",
        "--admin-port",
        "9090",  # /metrics, /status and the probes: not for the API's clients
    ]
    assert router["resources"] == {
        "requests": {"cpu": "250m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert router["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "admin", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert {"name": "MODELROUTE_REGION", "value": "us-east-1"} in router["env"]
    assert {"name": "MODELROUTE_SECRETS_DIR", "value": "/var/run/secrets/modelroute"} in router[
        "env"
    ]
    assert router["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert router["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    annotations = rendered(route)["Deployment", "chat-us-east-1"]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/metrics",
    }
    assert {"name": "config", "mountPath": "/etc/modelroute", "readOnly": True} in router[
        "volumeMounts"
    ]


def test_default_image_follows_the_package_version(
    route: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelroute
    from modelroute.operator.settings import OperatorSettings

    monkeypatch.delenv("MODELROUTE_ROUTER_IMAGE", raising=False)
    assert (
        OperatorSettings.from_env().router_image
        == f"ghcr.io/modelroute/modelroute:{modelroute.__version__}"
    )
    monkeypatch.setenv("MODELROUTE_ROUTER_IMAGE", "mirror.local/mr:1")
    assert OperatorSettings.from_env().router_image == "mirror.local/mr:1"


def test_every_regions_secrets_are_mounted_for_failover(route: dict[str, Any]) -> None:
    objects = rendered(route)
    mounts = {m["mountPath"] for m in container(objects, "chat-eu-west-1")["volumeMounts"]}
    # The eu router fails over to the us endpoint, so it needs that key too.
    assert "/var/run/secrets/modelroute/ds-eu-west-1" in mounts
    assert "/var/run/secrets/modelroute/ds-us-east-1" in mounts
    volumes = {v["name"]: v for v in pod(objects, "chat-eu-west-1")["volumes"]}
    assert volumes["secret-ds-eu-west-1"]["secret"] == {
        "secretName": "ds-eu-west-1",
        "items": [{"key": "apiKey", "path": "apiKey"}],
        "defaultMode": 0o440,
    }


def test_resources_come_from_the_spec(route: dict[str, Any]) -> None:
    route["spec"]["resources"] = {"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    router = container(rendered(route))
    assert router["resources"] == {
        "requests": {"cpu": "1"},
        "limits": {"cpu": "2", "memory": "1Gi"},
    }


def test_client_auth_secret_is_mounted_in_every_region(route: dict[str, Any]) -> None:
    route["spec"]["auth"] = {"keysSecretRef": {"name": "clients", "key": "keys"}}
    objects = rendered(route)
    for region in ("us-east-1", "eu-west-1"):
        paths = {m["mountPath"] for m in container(objects, f"chat-{region}")["volumeMounts"]}
        assert "/var/run/secrets/modelroute/clients" in paths


def test_no_secret_value_or_reference_leaks_into_env(route: dict[str, Any]) -> None:
    router = container(rendered(route))
    assert all("valueFrom" not in env for env in router["env"])
    assert all(
        "secret" not in env["name"].lower() or env["name"] == "MODELROUTE_SECRETS_DIR"
        for env in router["env"]
    )


def test_long_secret_names_get_a_short_volume_name(route: dict[str, Any]) -> None:
    long_name = "k" * 70
    route["spec"]["providers"][0]["endpoints"][0]["apiKeySecretRef"]["name"] = long_name
    volumes = pod(rendered(route))["volumes"]
    (volume,) = [v for v in volumes if v.get("secret", {}).get("secretName") == long_name]
    assert len(volume["name"]) <= 63


def test_pod_is_hardened(route: dict[str, Any]) -> None:
    objects = rendered(route)
    spec = pod(objects)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    security = container(objects)["securityContext"]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container(objects)["resources"]) == {"requests", "limits"}


def test_pods_are_pinned_to_their_region_by_default(route: dict[str, Any]) -> None:
    assert pod(rendered(route), "chat-eu-west-1")["nodeSelector"] == {
        "topology.kubernetes.io/region": "eu-west-1"
    }


def test_annotation_changes_the_region_label(route: dict[str, Any]) -> None:
    route["metadata"]["annotations"] = {REGION_LABEL_ANNOTATION: "example.com/dc"}
    assert pod(rendered(route))["nodeSelector"] == {"example.com/dc": "us-east-1"}


def test_empty_annotation_turns_pinning_off(route: dict[str, Any]) -> None:
    route["metadata"]["annotations"] = {REGION_LABEL_ANNOTATION: ""}
    assert "nodeSelector" not in pod(rendered(route))


def test_grace_period_covers_shutdown_delay_and_drain(route: dict[str, Any]) -> None:
    route["spec"]["server"] = {"shutdownDelay": "2500ms", "drainTimeout": "30s"}
    assert pod(rendered(route))["terminationGracePeriodSeconds"] == 33 + 5


def test_default_grace_period(route: dict[str, Any]) -> None:
    assert pod(rendered(route))["terminationGracePeriodSeconds"] == 5 + 60 + 5


def test_deployment_leaves_replicas_to_the_hpa(route: dict[str, Any]) -> None:
    assert "replicas" not in rendered(route)["Deployment", "chat-us-east-1"]["spec"]


def test_config_changes_with_the_spec_only(route: dict[str, Any]) -> None:
    def config(document: dict[str, Any]) -> str:
        return config_name(rendered(document))

    before = config(route)
    route["metadata"]["labels"] = {"team": "x"}
    route["metadata"]["annotations"] = {REGION_LABEL_ANNOTATION: ""}
    assert config(route) == before
    route["spec"]["cache"] = {"enabled": True}
    assert config(route) != before


def test_defaults_the_api_server_adds_change_no_config_and_no_pod(example: dict[str, Any]) -> None:
    """A CRD upgrade that only adds defaults: the stored spec gains them, nothing rolls."""
    defaulted = copy.deepcopy(example)
    defaulted["spec"] = structural_defaults(
        example["spec"], resource_schema()["properties"]["spec"]
    )
    assert defaulted["spec"] != example["spec"]
    for key, obj in rendered(example, "default").items():
        if key[0] in ("ConfigMap", "Deployment"):
            assert rendered(defaulted, "default")[key] == obj, key


def test_without_defaults_is_a_fixed_point_and_keeps_the_meaning(example: dict[str, Any]) -> None:
    schema = resource_schema()["properties"]["spec"]
    once = without_defaults(example["spec"], schema)
    assert without_defaults(once, schema) == once
    assert parse_route(dict(example, spec=once)).spec == parse_route(example).spec


def test_hpa_from_autoscaling(route: dict[str, Any]) -> None:
    route["spec"]["autoscaling"] = {
        "minReplicas": 3,
        "maxReplicas": 12,
        "targetP99": "1500ms",
        "targetInFlight": 40,
        "scaleDownStabilization": "10m",
    }
    spec = rendered(route)["HorizontalPodAutoscaler", "chat-us-east-1"]["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "chat-us-east-1",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 12)
    assert spec["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "modelroute_request_duration_seconds_p99"},
                "target": {"type": "AverageValue", "averageValue": "1500m"},
            },
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "modelroute_requests_in_flight"},
                "target": {"type": "AverageValue", "averageValue": "40"},
            },
        },
    ]
    assert spec["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 600}}


def test_hpa_scales_on_ttft_when_asked(route: dict[str, Any]) -> None:
    route["spec"]["autoscaling"] = {"metric": "ttft", "targetP99": "2s"}
    metric = rendered(route)["HorizontalPodAutoscaler", "chat-us-east-1"]["spec"]["metrics"][0][
        "pods"
    ]
    assert metric == {
        "metric": {"name": "modelroute_time_to_first_token_seconds_p99"},
        "target": {"type": "AverageValue", "averageValue": "2"},
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.0, "2"), (1.5, "1500m"), (0.25, "250m"), (0.0015, "1500u"), (90.0, "90"), (0.1, "100m")],
)
def test_quantity(seconds: float, text: str) -> None:
    assert quantity(seconds) == text


def test_pdb_allows_one_disruption(route: dict[str, Any]) -> None:
    spec = rendered(route)["PodDisruptionBudget", "chat-us-east-1"]["spec"]
    assert spec["maxUnavailable"] == 1
    assert spec["selector"]["matchLabels"]["modelroute.io/region"] == "us-east-1"


def test_owner_references_only_with_a_uid(route: dict[str, Any]) -> None:
    assert all("ownerReferences" not in obj["metadata"] for obj in rendered(route).values())
    route["metadata"]["uid"] = "1234"
    for obj in rendered(route).values():
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "modelroute.io/v1alpha1",
            "kind": "ModelRoute",
            "name": "chat",
            "uid": "1234",
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_render_is_deterministic(route: dict[str, Any]) -> None:
    assert rendered(route) == rendered(route)


def test_yaml_output_parses_back_to_the_objects(route: dict[str, Any]) -> None:
    objects = render(route, parse_route(route), SETTINGS, "ai")
    text = to_yaml(objects)
    assert "route.yaml: |" in text  # readable block, not an escaped one-liner
    assert list(yaml.safe_load_all(text)) == objects


@pytest.mark.parametrize("variant", ["minimal", "auth", "ttft", "unpinned"])
def test_every_rendered_object_passes_kubernetes_validate(variant: str) -> None:
    document = minimal_route()
    document["metadata"]["uid"] = "1234"
    if variant == "auth":
        document["spec"]["auth"] = {"keysSecretRef": {"name": "clients", "key": "keys"}}
    if variant == "ttft":
        document["spec"]["autoscaling"] = {"metric": "ttft", "targetP99": "750ms"}
    if variant == "unpinned":
        document["metadata"]["annotations"] = {REGION_LABEL_ANNOTATION: ""}
    for obj in rendered(document).values():
        kubernetes_validate.validate(obj, "1.33", strict=True)


def test_examples_render_valid_objects(example: dict[str, Any]) -> None:
    for obj in rendered(example, "default").values():
        kubernetes_validate.validate(obj, "1.33", strict=True)
