"""ModelRoute → the Kubernetes objects that run it. Pure: no cluster, no clock.

Per region ``R`` of route ``N`` that this operator serves (all of them unless
it was started with ``--region``): a ConfigMap ``N-R-<hash>`` holding the route
as ``route.yaml``, and, named ``N-R``, a Deployment of router pods pinned to
that region's nodes, a Service, a PodDisruptionBudget and an
``autoscaling/v2`` HPA; plus one Service named ``N`` spanning every region with
``trafficDistribution: PreferClose``, so callers reach the routers closest to
them.

Config changes are ordinary Deployment rollouts. The ConfigMap is immutable
and named by a hash of its content, so a spec change is a *new* ConfigMap and
a new pod template referencing it: Kubernetes rolls it out with
``maxUnavailable: 0`` (old pods keep serving the old config until new ones are
ready; a config the router rejects stalls the rollout instead of taking the
region down), and reverting the spec brings back the old ConfigMap name and so
the old ReplicaSet. ``route.yaml`` holds the spec *minus every field equal to
its default* (the CRD's schema defaults), with sorted keys: a CRD or operator
upgrade that only adds defaulted fields changes no ConfigMap and rolls no pod.

The router side relies on these conventions (keep them in step with it):

* the container runs ``router --config /etc/modelroute/route.yaml --port 8080
  --admin-port 9090``: the API on port ``http``, and ``/healthz``, ``/readyz``,
  ``/metrics`` and ``/status`` on port ``admin`` only. The route-wide Service,
  which clients call, exposes ``http`` alone; the per-region Services add
  ``admin`` for the ServiceMonitor; probes and scrape annotations use ``admin``;
* ``route.yaml`` is a ModelRoute manifest (apiVersion, kind, name, namespace,
  spec; never status, never secret values);
* ``MODELROUTE_REGION`` names the pod's region; each Secret the route uses
  (``apiKeySecretRef`` of every region's endpoints, since failover crosses
  regions, the client keys of ``spec.auth`` and Redis's password and CA) is
  mounted read-only at ``$MODELROUTE_SECRETS_DIR/<secret>/<key>``, and the
  router re-reads it when it changes (a rotated key needs no rollout).

Pods are pinned with a nodeSelector on ``topology.kubernetes.io/region``. A
route overrides the label with the annotation ``modelroute.io/node-region-label``
(another key, e.g. a custom one on on-premises nodes) or turns pinning off by
setting it to the empty string (single-region clusters, kind, minikube).

Deployments carry no ``replicas``: the HPA owns that field (it lifts a new
Deployment to ``minReplicas`` even before any metric exists), and an operator
that wrote it back would fight the autoscaler.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import yaml

from modelroute.operator.crd import resource_schema
from modelroute.operator.settings import OperatorSettings
from modelroute.spec import API_VERSION, KIND, ModelRoute, RouteSpec
from modelroute.spec.secrets import secret_refs

Manifest = dict[str, Any]

PORT = 8080
ADMIN_PORT = 9090
SERVICE_PORT = 80
REVISION_HISTORY = 5  # old ReplicaSets kept, and old ConfigMaps of each region with them
CONFIG_DIR = "/etc/modelroute"
CONFIG_KEY = "route.yaml"
SECRETS_DIR = "/var/run/secrets/modelroute"
RUN_AS = 65532  # the images' user (Dockerfile), distroless's "nonroot" uid and gid

REGION_LABEL_ANNOTATION = "modelroute.io/node-region-label"
DEFAULT_REGION_LABEL = "topology.kubernetes.io/region"
ROUTE_LABEL = "modelroute.io/route"
REGION_LABEL = "modelroute.io/region"
MANAGED_BY = "modelroute-operator"

LATENCY_METRICS = {
    "latency": "modelroute_request_duration_seconds_p99",
    "ttft": "modelroute_time_to_first_token_seconds_p99",
}
IN_FLIGHT_METRIC = "modelroute_requests_in_flight"


def child_name(route: str, region: str) -> str:
    return f"{route}-{region}"


def config_map_name(route: str, region: str, config: str) -> str:
    """``<route>-<region>-<hash>``: a new name for every new content (immutable ConfigMaps)."""
    return f"{child_name(route, region)}-{config_hash(config)[:10]}"


def labels(route: str, region: str | None = None) -> dict[str, str]:
    """The labels every child carries; ``region`` only on per-region children."""
    result = {
        "app.kubernetes.io/name": "modelroute",
        "app.kubernetes.io/instance": route,
        "app.kubernetes.io/component": "router",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        ROUTE_LABEL: route,
    }
    if region is not None:
        result[REGION_LABEL] = region
    return result


def selector(route: str, region: str | None = None) -> dict[str, str]:
    """Pod selector: stable forever, because a Deployment's selector is immutable."""
    result = {"app.kubernetes.io/component": "router", ROUTE_LABEL: route}
    if region is not None:
        result[REGION_LABEL] = region
    return result


def quantity(seconds: float) -> str:
    """A duration in seconds as the shortest exact Kubernetes quantity ("2", "1500m")."""
    for suffix, scale in (("", 1), ("m", 1000), ("u", 1_000_000)):
        scaled = seconds * scale
        if math.isclose(scaled, round(scaled), abs_tol=1e-9):
            return f"{round(scaled)}{suffix}"
    return f"{round(seconds * 1_000_000_000)}n"


def plain(value: Any) -> Any:
    """A deep copy made of dicts and lists only (kopf hands out read-only views)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def without_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` minus every field equal to its schema default, recursively.

    What the API server adds when a CRD declares a new default, and what a user
    writes that equals the default, both disappear: the result changes only
    when the meaning does.
    """
    if isinstance(value, Mapping):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        result = {}
        for key, item in value.items():
            child = properties.get(key, extra if isinstance(extra, Mapping) else {})
            pruned = without_defaults(item, child)
            if "default" in child and pruned == without_defaults(child["default"], child):
                continue
            result[key] = pruned
        return result
    if isinstance(value, list | tuple):
        items = schema.get("items") or {}
        return [without_defaults(item, items) for item in value]
    return value


@functools.cache
def _spec_schema() -> Mapping[str, Any]:
    schema: Mapping[str, Any] = resource_schema()["properties"]["spec"]
    return schema


def route_config(document: Mapping[str, Any], namespace: str) -> str:
    """The ``route.yaml`` the router loads: the manifest minus status, metadata noise and
    defaulted fields, keys sorted, so that equal meaning gives equal bytes (and hash)."""
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": document["metadata"]["name"], "namespace": namespace},
        "spec": without_defaults(plain(document["spec"]), _spec_schema()),
    }
    return yaml.safe_dump(manifest, sort_keys=True)


def config_hash(config: str) -> str:
    return hashlib.sha256(config.encode()).hexdigest()[:16]


def route_secrets(spec: RouteSpec) -> dict[str, list[str]]:
    """Secret name → keys every router of the route reads, sorted for stable output.

    Every region's keys, not only the router's own: failing over to another
    region's endpoint needs that endpoint's key.
    """
    keys: dict[str, set[str]] = {}
    for _, ref in secret_refs(spec):
        keys.setdefault(ref.name, set()).add(ref.key)
    return {name: sorted(keys[name]) for name in sorted(keys)}


def _secret_volume_name(secret: str) -> str:
    name = f"secret-{secret}"
    if len(name) <= 63:
        return name
    return f"secret-{hashlib.sha256(secret.encode()).hexdigest()[:12]}"


def node_selector(document: Mapping[str, Any], region: str) -> dict[str, str] | None:
    annotations = document.get("metadata", {}).get("annotations") or {}
    label = annotations.get(REGION_LABEL_ANNOTATION, DEFAULT_REGION_LABEL)
    return {label: region} if label else None


def _metadata(
    name: str, namespace: str, route_labels: dict[str, str], owner: list[Manifest] | None
) -> Manifest:
    metadata: Manifest = {"name": name, "namespace": namespace, "labels": route_labels}
    if owner:
        metadata["ownerReferences"] = owner
    return metadata


def owner_references(document: Mapping[str, Any]) -> list[Manifest] | None:
    """The owner reference to the route, or None when it has no uid (``modelroute render``)."""
    metadata = document.get("metadata", {})
    uid = metadata.get("uid")
    if not uid:
        return None
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": metadata["name"],
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def config_map(
    route: ModelRoute, namespace: str, region: str, config: str, owner: list[Manifest] | None
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            config_map_name(route.name, region, config),
            namespace,
            labels(route.name, region),
            owner,
        ),
        "immutable": True,
        "data": {CONFIG_KEY: config},
    }


def pod_spec(
    document: Mapping[str, Any],
    route: ModelRoute,
    region: str,
    config: str,
    settings: OperatorSettings,
) -> Manifest:
    """The router pod: hardened, pinned to its region, secrets as read-only files."""
    server = route.spec.server
    secrets = route_secrets(route.spec)
    mounts: list[Manifest] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[Manifest] = [
        {"name": "config", "configMap": {"name": config_map_name(route.name, region, config)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    for secret, keys in secrets.items():
        volume = _secret_volume_name(secret)
        mounts.append({"name": volume, "mountPath": f"{SECRETS_DIR}/{secret}", "readOnly": True})
        volumes.append(
            {
                "name": volume,
                "secret": {
                    "secretName": secret,
                    "items": [{"key": key, "path": key} for key in keys],
                    "defaultMode": 0o440,
                },
            }
        )
    container: Manifest = {
        "name": "router",
        "image": settings.router_image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "router",
            "--config",
            f"{CONFIG_DIR}/{CONFIG_KEY}",
            "--host",
            "0.0.0.0",
            "--port",
            str(PORT),
            "--admin-port",
            str(ADMIN_PORT),
        ],
        "ports": [
            {"name": "http", "containerPort": PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "env": [
            {"name": "MODELROUTE_REGION", "value": region},
            {"name": "MODELROUTE_SECRETS_DIR", "value": SECRETS_DIR},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "admin"},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "admin"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": dict(route.spec.resources.requests),
            "limits": dict(route.spec.resources.limits),
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    spec: Manifest = {
        "automountServiceAccountToken": False,  # routers never call the Kubernetes API
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": math.ceil(server.shutdown_delay + server.drain_timeout)
        + 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(route.name, region)},
            }
        ],
        "containers": [container],
        "volumes": volumes,
    }
    pinned = node_selector(document, region)
    if pinned:
        spec["nodeSelector"] = pinned
    return spec


def deployment(
    document: Mapping[str, Any],
    route: ModelRoute,
    namespace: str,
    region: str,
    config: str,
    settings: OperatorSettings,
    owner: list[Manifest] | None,
) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            child_name(route.name, region), namespace, labels(route.name, region), owner
        ),
        "spec": {
            "selector": {"matchLabels": selector(route.name, region)},
            "revisionHistoryLimit": REVISION_HISTORY,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels(route.name, region),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(ADMIN_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec(document, route, region, config, settings),
            },
        },
    }


def service(
    route: ModelRoute, namespace: str, region: str | None, owner: list[Manifest] | None
) -> Manifest:
    """A region's Service, or with ``region=None`` the route-wide one (closest routers first).

    The route-wide Service is the clients' and exposes the API only; a region's adds the
    admin port, which the ServiceMonitor scrapes (and the NetworkPolicy opens to the
    scraper's namespaces only)."""
    name = route.name if region is None else child_name(route.name, region)
    ports: list[Manifest] = [
        {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
    ]
    spec: Manifest = {"type": "ClusterIP", "selector": selector(route.name, region), "ports": ports}
    if region is None:
        spec["trafficDistribution"] = "PreferClose"
    else:
        ports.append(
            {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"}
        )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, namespace, labels(route.name, region), owner),
        "spec": spec,
    }


def pod_disruption_budget(
    route: ModelRoute, namespace: str, region: str, owner: list[Manifest] | None
) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(
            child_name(route.name, region), namespace, labels(route.name, region), owner
        ),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(route.name, region)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _pods_metric(name: str, average: str) -> Manifest:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": name},
            "target": {"type": "AverageValue", "averageValue": average},
        },
    }


def autoscaler(
    route: ModelRoute, namespace: str, region: str, owner: list[Manifest] | None
) -> Manifest:
    """Scale on per-pod p99 latency and, because latency alone does not fall linearly
    with replicas, on in-flight requests per pod; the HPA takes the higher of the two."""
    scaling = route.spec.autoscaling
    name = child_name(route.name, region)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, namespace, labels(route.name, region), owner),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                _pods_metric(LATENCY_METRICS[scaling.metric], quantity(scaling.target_p99)),
                _pods_metric(IN_FLIGHT_METRIC, str(scaling.target_in_flight)),
            ],
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": math.ceil(scaling.scale_down_stabilization)
                }
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's route.yaml) as readable ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(objects: list[Manifest]) -> str:
    """Objects as one multi-document YAML stream, for review and GitOps."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False)


def served_regions(route: ModelRoute, settings: OperatorSettings) -> list[str]:
    """The route's regions this operator runs routers for, in spec order."""
    return [region.name for region in route.spec.regions if settings.serves(region.name)]


def render(
    document: Mapping[str, Any],
    route: ModelRoute,
    settings: OperatorSettings,
    namespace: str,
) -> list[Manifest]:
    """Every object the operator applies for ``route``, in apply order.

    ``document`` is the manifest ``route`` was parsed from: its spec goes into the
    ConfigMap (defaults left out), its uid (if any) into owner references. Only the
    regions ``settings`` serves get routers.
    """
    regions = served_regions(route, settings)
    if not regions:
        return []
    owner = owner_references(document)
    config = route_config(document, namespace)
    objects: list[Manifest] = []
    for region in regions:
        objects += [
            config_map(route, namespace, region, config, owner),
            deployment(document, route, namespace, region, config, settings, owner),
            service(route, namespace, region, owner),
            pod_disruption_budget(route, namespace, region, owner),
            autoscaler(route, namespace, region, owner),
        ]
    objects.append(service(route, namespace, None, owner))
    return objects
