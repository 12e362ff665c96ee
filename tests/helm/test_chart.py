"""helm lint and helm template, with default values and with every option on.

Every rendered object passes kubernetes-validate (Kubernetes 1.33 schemas); the two
prometheus-operator kinds it does not know get a minimal structural schema here. The
monitoring objects carry the shipped files unchanged, and select what the operator
really creates (its render functions are the reference).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

import modelroute
from modelroute import cli
from modelroute.operator import commands
from modelroute.operator.render import (
    ADMIN_PORT,
    IN_FLIGHT_METRIC,
    LATENCY_METRICS,
    RUN_AS,
    render,
)
from modelroute.operator.settings import OperatorSettings
from modelroute.spec import parse_route
from tests.operator.hardening import assert_hardened

from .chart import ALL_ON, CHART, MANIFESTS, NAMESPACE, Helm, HelmFailed, Manifest, by_kind, one

KUBERNETES = "1.33"
FILES = CHART / "files"

# prometheus-operator's Duration, as in its CRDs.
DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
LABEL_NAME = {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
            "maxLength": 253,
        },
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
    "additionalProperties": False,
}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
# The fields of monitoring.coreos.com/v1 ServiceMonitor and PrometheusRule the chart uses.
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                            "relabelings": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "sourceLabels": {"type": "array", "items": LABEL_NAME},
                                        "targetLabel": LABEL_NAME,
                                        "action": {"enum": ["replace", "keep", "drop"]},
                                        "regex": {"type": "string"},
                                        "replacement": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
RULE = {
    "type": "object",
    "required": ["expr"],
    "additionalProperties": False,
    "properties": {
        "record": {"type": "string"},
        "alert": {"type": "string"},
        "expr": {"type": "string", "minLength": 1},
        "for": DURATION,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": DURATION,
                            "rules": {"type": "array", "items": RULE},
                        },
                    },
                },
            },
        },
    },
}
CUSTOM_KINDS = {"ServiceMonitor": SERVICE_MONITOR, "PrometheusRule": PROMETHEUS_RULE}


@pytest.fixture(scope="module")
def default(helm: Helm) -> list[Manifest]:
    return helm.template()


@pytest.fixture(scope="module")
def all_on(helm: Helm) -> list[Manifest]:
    return helm.template(ALL_ON)


def validate(document: Manifest) -> None:
    if document["kind"] in CUSTOM_KINDS:
        jsonschema.validate(document, CUSTOM_KINDS[document["kind"]])
    else:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels, matchExpressions with Exists) matches labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "Exists", "only Exists is emulated here"
        if expression["key"] not in labels:
            return False
    return True


def test_chart_version_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "modelroute"
    assert chart["version"] == chart["appVersion"] == modelroute.__version__
    assert chart["kubeVersion"] == ">=1.30.0-0"


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["default", "all-on"])
def test_helm_lint_strict(helm: Helm, values: Manifest | None) -> None:
    extra = ["-f", str(helm.values_file(values))] if values is not None else []
    output = helm.run("lint", "--strict", str(CHART), "-n", NAMESPACE, *extra)
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert "[WARNING]" not in output and "[ERROR]" not in output


def test_default_renders_only_the_operator(default: list[Manifest]) -> None:
    kinds = sorted(o["kind"] for o in default)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",  # leader election
        "RoleBinding",
        "ServiceAccount",
    ]


def test_all_on_renders_every_optional_object(all_on: list[Manifest]) -> None:
    names = sorted(
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in all_on
    )
    assert names == [
        ("ConfigMap", "monitoring", "llm-router-adapter-rules"),
        ("ConfigMap", "monitoring", "llm-router-dashboard"),
        ("Deployment", NAMESPACE, "llm-router-operator"),
        ("NetworkPolicy", "team-a", "llm-router-routers"),
        ("NetworkPolicy", "team-b", "llm-router-routers"),
        ("PrometheusRule", NAMESPACE, "llm-router-rules"),
        ("Role", NAMESPACE, "llm-router-operator-leader-election"),
        ("Role", "team-a", "llm-router-operator"),
        ("Role", "team-b", "llm-router-operator"),
        ("RoleBinding", NAMESPACE, "llm-router-operator-leader-election"),
        ("RoleBinding", "team-a", "llm-router-operator"),
        ("RoleBinding", "team-b", "llm-router-operator"),
        ("ServiceAccount", NAMESPACE, "router-operator"),
        ("ServiceMonitor", "monitoring", "llm-router-routers"),
    ]


@pytest.mark.parametrize("rendering", ["default", "all_on"])
def test_every_rendered_object_is_valid(rendering: str, request: pytest.FixtureRequest) -> None:
    objects: list[Manifest] = request.getfixturevalue(rendering)
    for document in objects:
        validate(document)


@pytest.mark.parametrize("rendering", ["default", "all_on"])
def test_operator_pod_is_hardened(rendering: str, request: pytest.FixtureRequest) -> None:
    """Non-root as the image's user by default, read-only root, no capabilities, /tmp."""
    deployment = one(request.getfixturevalue(rendering), "Deployment")
    assert_hardened(deployment, run_as=RUN_AS if rendering == "default" else None)


def test_the_validators_do_reject_a_wrong_type(all_on: list[Manifest]) -> None:
    """Guard against validators that accept anything."""
    deployment = copy.deepcopy(one(all_on, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["args"] = "operator"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    monitor = copy.deepcopy(one(all_on, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "1.5s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


def test_non_default_operator_settings_reach_the_operator(
    all_on: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container's args run through the real CLI; the env sets the router image."""
    deployment = one(all_on, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example:5000/ops/modelroute-operator:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    settings = OperatorSettings.from_env(env)
    assert settings.router_image == "registry.example:5000/ops/modelroute:0.1.0-rc1"
    assert pod["serviceAccountName"] == "router-operator"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    for key in ("nodeSelector", "tolerations", "affinity"):
        assert pod[key] == ALL_ON[key]
    assert pod["securityContext"] == ALL_ON["podSecurityContext"]
    assert container["securityContext"] == ALL_ON["securityContext"]
    assert container["resources"] == ALL_ON["resources"]

    calls: list[tuple[OperatorSettings, tuple[str, int], bool]] = []

    def run(settings: OperatorSettings, listen: tuple[str, int], verbose: bool) -> int:
        calls.append((settings, listen, verbose))
        return 0

    monkeypatch.setattr(commands, "run", run)
    assert cli.main(container["args"]) == 0
    ((settings, listen, verbose),) = calls
    assert verbose is True
    assert settings.namespaces == ("team-a", "team-b")
    assert settings.regions == frozenset({"us-east-1"})
    assert settings.resync_seconds == 30
    assert settings.lease_name == "llm-router-operator"  # not another installation's Lease
    assert listen[1] == 8081  # the probes' port
    (role,) = [
        r for r in by_kind(all_on, "Role") if r["metadata"]["name"].endswith("-leader-election")
    ]
    assert role["rules"][1]["resourceNames"] == ["llm-router-operator"]
    assert deployment["spec"]["replicas"] == 3


def test_service_account_and_rbac_can_be_left_out(helm: Helm) -> None:
    objects = helm.template(
        {"serviceAccount": {"create": False, "name": "preexisting"}, "rbac": {"create": False}}
    )
    assert [o["kind"] for o in objects] == ["Deployment"]
    assert objects[0]["spec"]["template"]["spec"]["serviceAccountName"] == "preexisting"
    # the default installation needs no --lease: manifests/ and the chart agree
    assert (
        "--lease"
        not in one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_dashboard_configmap_holds_the_dashboard(all_on: list[Manifest]) -> None:
    (config_map,) = [
        o for o in by_kind(all_on, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["labels"]["team"] == "llm"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    shipped = json.loads((FILES / "grafana-dashboard.json").read_text())
    assert json.loads(config_map["data"]["modelroute.json"]) == shipped


def test_adapter_configmap_is_an_adapter_config_with_the_hpa_metrics(
    all_on: list[Manifest],
) -> None:
    (config_map,) = [
        o for o in by_kind(all_on, "ConfigMap") if o["metadata"]["name"].endswith("-adapter-rules")
    ]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    shipped = yaml.safe_load((FILES / "prometheus-adapter-rules.yaml").read_text())
    custom = shipped["rules"]["custom"] if isinstance(shipped["rules"], dict) else shipped["rules"]
    assert config == {"rules": custom}  # the adapter's --config file format
    # Exactly the metrics the operator's HorizontalPodAutoscalers ask for.
    served = {rule["name"]["as"] for rule in config["rules"]}
    assert served == {*LATENCY_METRICS.values(), IN_FLIGHT_METRIC}


def test_prometheus_rule_holds_the_rule_file(all_on: list[Manifest]) -> None:
    rule = one(all_on, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())


def test_service_monitor_scrapes_each_router_once(all_on: list[Manifest]) -> None:
    """Against the objects the operator renders for the two-region example."""
    monitor = one(all_on, "ServiceMonitor")
    spec = monitor["spec"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert spec["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    (endpoint,) = spec["endpoints"]
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == (
        "/metrics",
        "30s",
        "20s",
    )

    document = yaml.safe_load((MANIFESTS / "examples" / "chat-two-regions.yaml").read_text())
    children = render(document, parse_route(document), OperatorSettings(), "team-a")
    services = by_kind(children, "Service")
    selected = [s for s in services if selects(spec["selector"], s["metadata"]["labels"])]
    # not the route-wide "chat", which exposes the API port only
    assert [s["metadata"]["name"] for s in selected] == ["chat-us-east-1", "chat-eu-west-1"]
    assert endpoint["port"] == "admin"
    for service in selected:
        assert endpoint["port"] in [port["name"] for port in service["spec"]["ports"]]
    (route_wide,) = [s for s in services if s["metadata"]["name"] == "chat"]
    assert [port["name"] for port in route_wide["spec"]["ports"]] == ["http"]
    for deployment in by_kind(children, "Deployment"):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(ADMIN_PORT)

    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets["namespace"] == ["__meta_kubernetes_namespace"]
    assert targets["pod"] == ["__meta_kubernetes_pod_name"]
    for deployment in by_kind(children, "Deployment"):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        meta = {
            "__meta_kubernetes_pod_label_" + key.replace(".", "_").replace("/", "_"): value
            for key, value in pod_labels.items()
        }
        assert meta[targets["route"][0]] == "chat"
        assert meta[targets["region"][0]] == pod_labels["modelroute.io/region"]


def test_service_monitor_defaults_to_every_namespace(helm: Helm) -> None:
    monitor = one(helm.template({"serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    validate(monitor)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("grafanaDashboard", "files/grafana-dashboard.json"),
        ("prometheusAdapterRules", "files/prometheus-adapter-rules.yaml"),
        ("prometheusRule", "files/prometheus-rules.yaml"),
    ],
)
def test_a_missing_shipped_file_fails_clearly(
    helm: Helm, tmp_path: Path, value: str, path: str
) -> None:
    chart = tmp_path / "modelroute"
    shutil.copytree(CHART, chart)
    (chart / path).unlink()
    values = helm.values_file({value: {"enabled": True}})
    with pytest.raises(HelmFailed, match=f"{value}.enabled is true but the chart has no {path}"):
        helm.run("template", "modelroute", str(chart), "-f", str(values))


def test_crd_is_installed_from_crds_and_matches_manifests(
    helm: Helm, default: list[Manifest]
) -> None:
    shipped = (CHART / "crds" / "modelroute.io_modelroutes.yaml").read_bytes()
    assert shipped == (MANIFESTS / "10-crd.yaml").read_bytes()
    assert by_kind(default, "CustomResourceDefinition") == []  # crds/ is never templated
    with_crds = helm.template(None, "--include-crds")
    (crd,) = by_kind(with_crds, "CustomResourceDefinition")
    assert crd == yaml.safe_load(shipped)
    assert crd["metadata"]["name"] == "modelroutes.modelroute.io"
    assert "mr" in crd["spec"]["names"]["shortNames"]


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["default", "all-on"])
def test_notes_tell_how_to_create_call_and_scale_a_route(
    helm: Helm, values: Manifest | None
) -> None:
    extra = ["-f", str(helm.values_file(values))] if values is not None else []
    output = helm.run(
        "install", "modelroute", str(CHART), "-n", NAMESPACE, "--dry-run=client", *extra
    )
    notes = output.split("NOTES:\n", 1)[1]
    assert "kubectl get mr" in notes
    assert "manifests/examples/chat-two-regions.yaml" in notes
    assert "create secret generic" in notes
    assert "/v1/chat/completions" in notes and "OpenAI(base_url=" in notes
    assert "prometheus-adapter" in notes and "targetP99" in notes
    assert "elect a leader on the Lease" in notes and "chat-R-<hash>" in notes
    if values is None:
        assert "every namespace" in notes and "http://chat.default.svc/v1" in notes
        assert "stretched across" in notes
        assert "serviceMonitor.enabled=true" in notes
        assert "NetworkPolicy" not in notes
    else:
        assert "Routers in team-a, team-b accept API connections (port 8080)" in notes
        assert "only from the namespaces team-a, web and namespaces matching 1" in notes
        assert "(port 9090: /metrics, /status) only from the namespaces monitoring" in notes
        assert "running the routers of us-east-1 only" in notes
        assert "team-a, team-b" in notes and "http://chat.team-a.svc/v1" in notes
        assert "rules.existing=llm-router-adapter-rules" in notes
        assert "monitoring/llm-router-routers" in notes
        assert "monitoring/llm-router-dashboard" in notes
