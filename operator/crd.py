"""The ModelRoute CustomResourceDefinition, generated from the spec model.

The spec schema is :func:`modelroute.spec.openapi_schema` of
:class:`~modelroute.spec.RouteSpec`, untouched except for the list and string
bounds the CEL cost estimator needs; this module adds what only the API
server cares about: the status schema, printer columns and the CEL rules of
:mod:`modelroute.operator.crd_rules`.

``python -m modelroute.operator.crd`` prints the CRD as YAML. The committed
copies (``manifests/10-crd.yaml`` and the chart's
``crds/modelroute.io_modelroutes.yaml``) are that output, byte for byte, and
a test keeps them so: edit the spec model, then regenerate with
``python -m modelroute.operator.crd --write``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from modelroute.operator.crd_rules import RULES, schema_at
from modelroute.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION, RouteSpec, openapi_schema

SINGULAR = KIND.lower()
SHORT_NAMES = ["mr"]
CRD_NAME = f"{PLURAL}.{GROUP}"

REPO = Path(__file__).resolve().parent.parent
CRD_FILES = (
    REPO / "manifests" / "10-crd.yaml",
    REPO / "charts" / "modelroute" / "crds" / f"{GROUP}_{PLURAL}.yaml",
)

CONDITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A condition per Kubernetes API conventions (KEP-1623).",
    "required": ["type", "status", "reason", "message", "lastTransitionTime"],
    "properties": {
        "type": {"type": "string", "description": "Ready, Progressing or Degraded."},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string", "description": "CamelCase reason for the status."},
        "message": {"type": "string", "description": "Human-readable details."},
        "lastTransitionTime": {
            "type": "string",
            "format": "date-time",
            "description": "When status last changed.",
        },
        "observedGeneration": {
            "type": "integer",
            "format": "int64",
            "description": "metadata.generation the condition was computed from.",
        },
    },
}

STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Observed state, written by the operator.",
    "properties": {
        "observedGeneration": {
            "type": "integer",
            "format": "int64",
            "description": "metadata.generation of the spec last reconciled.",
        },
        "readyRegions": {
            "type": "string",
            "description": "Regions with at least one ready router, over the regions this "
            "cluster's operator serves (2/3): all of spec.regions in a stretched cluster, its "
            "own with one cluster per region.",
        },
        "models": {
            "type": "string",
            "description": "Model names clients may request, comma-separated.",
        },
        "regions": {
            "type": "array",
            "description": "Router pods per region this cluster's operator serves.",
            "items": {
                "type": "object",
                "required": ["name", "replicas", "readyReplicas"],
                "properties": {
                    "name": {"type": "string"},
                    "replicas": {"type": "integer", "format": "int32"},
                    "readyReplicas": {"type": "integer", "format": "int32"},
                },
            },
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
        "conditions": {
            "type": "array",
            "items": CONDITION_SCHEMA,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    },
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Regions",
        "type": "string",
        "jsonPath": ".status.readyRegions",
        "description": "Regions with a ready router / regions this cluster serves",
    },
    {"name": "Models", "type": "string", "jsonPath": ".status.models"},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def resource_schema() -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the ModelRoute resource, rules and bounds included."""
    spec = openapi_schema(RouteSpec)
    spec["description"] = "Desired routers: regions, upstream providers, models and policies."
    root: dict[str, Any] = {
        "type": "object",
        "description": "Routes OpenAI-compatible requests for a set of model names across "
        "upstream providers and regions.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": copy.deepcopy(STATUS_SCHEMA),
        },
    }
    for rule in RULES:
        schema_at(root, rule.path).setdefault("x-kubernetes-validations", []).append(
            rule.as_schema()
        )
    return root


def custom_resource_definition() -> dict[str, Any]:
    """The full CRD object, as ``kubectl apply`` takes it."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "modelroute",
                "app.kubernetes.io/part-of": "modelroute",
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["modelroute"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": resource_schema()},
                }
            ],
        },
    }


def render_yaml() -> str:
    """The CRD as committed: a header saying where it comes from, then the YAML."""
    header = (
        f"# {API_VERSION} {KIND}: generated by `python -m modelroute.operator.crd` from\n"
        "# modelroute/spec/model.py. Do not edit by hand; regenerate with --write.\n"
    )
    body = yaml.safe_dump(custom_resource_definition(), sort_keys=False, width=100)
    return header + body


def main(argv: list[str] | None = None) -> int:
    """Print the CRD, or with ``--write`` regenerate the committed copies."""
    args = sys.argv[1:] if argv is None else argv
    text = render_yaml()
    if args == ["--write"]:
        for path in CRD_FILES:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
        return 0
    if args:
        print("usage: python -m modelroute.operator.crd [--write]", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
