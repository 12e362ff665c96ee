"""Running the real ``helm`` against charts/modelroute, and reading what it renders.

Helm runs with its config, cache and data directories in a temporary directory and no
kubeconfig, so the tests neither read nor write the user's Helm setup and need no cluster.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelroute"
MANIFESTS = REPO / "manifests"
RELEASE = "modelroute"
NAMESPACE = "modelroute-system"

Manifest = dict[str, Any]

# Every optional feature on, and every knob away from its default.
ALL_ON: Manifest = {
    "fullnameOverride": "llm-router",
    "image": {
        "repository": "registry.example:5000/ops/modelroute-operator",
        "tag": "0.1.0-rc1",
        "pullPolicy": "Always",
    },
    "routerImage": {"repository": "registry.example:5000/ops/modelroute", "tag": "0.1.0-rc1"},
    "imagePullSecrets": ["regcred"],
    "replicas": 3,
    "watchNamespaces": ["team-a", "team-b"],
    "regions": ["us-east-1"],
    "resync": 30,
    "verbose": True,
    "resources": {"requests": {"cpu": "100m", "memory": "192Mi"}, "limits": {"memory": "384Mi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                        ]
                    }
                ]
            }
        }
    },
    "podSecurityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    },
    "serviceAccount": {"create": True, "name": "router-operator"},
    "rbac": {"create": True},
    "grafanaDashboard": {
        "enabled": True,
        "namespace": "monitoring",
        "labels": {"team": "llm"},
        "annotations": {"grafana_folder": "LLM"},
    },
    "prometheusAdapterRules": {"enabled": True, "namespace": "monitoring"},
    "serviceMonitor": {
        "enabled": True,
        "namespace": "monitoring",
        "labels": {"release": "kube-prometheus-stack"},
        "namespaces": ["team-a", "team-b"],
        "interval": "30s",
        "scrapeTimeout": "20s",
    },
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "networkPolicy": {
        "enabled": True,
        "namespaces": ["team-a", "team-b"],
        "ingress": {
            "namespaces": ["team-a", "web"],
            "namespaceSelectors": [{"matchLabels": {"modelroute.io/client": "true"}}],
            "scraperNamespaces": ["monitoring"],
        },
        "egress": {
            "dns": {"namespace": "dns-system", "podLabels": {"app": "coredns"}},
            "upstreams": [
                {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"], "ports": [443]},
                {"cidr": "2001:db8::/32", "ports": [443, 8443]},
            ],
            "extra": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "vllm"}
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8000}],
                }
            ],
        },
    },
}


class HelmFailed(Exception):
    """helm exited non-zero; the message carries its output (lint reports on stdout)."""


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path  # HELM_CONFIG_HOME, HELM_CACHE_HOME and HELM_DATA_HOME live under it

    def run(self, *args: str) -> str:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "KUBECONFIG": str(self.home / "no-kubeconfig"),
        }
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise HelmFailed(
                f"helm {' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def values_file(self, values: Mapping[str, Any]) -> Path:
        fd, name = tempfile.mkstemp(dir=self.home, prefix="values-", suffix=".yaml")
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(dict(values), out, sort_keys=False)
        return Path(name)

    def template(self, values: Mapping[str, Any] | None = None, *args: str) -> list[Manifest]:
        """``helm template modelroute charts/modelroute -n modelroute-system``, parsed."""
        extra = ["-f", str(self.values_file(values))] if values is not None else []
        text = self.run("template", RELEASE, str(CHART), "-n", NAMESPACE, *extra, *args)
        return documents(text)


def documents(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def manifest_documents() -> list[Manifest]:
    return [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def by_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Manifest], kind: str) -> Manifest:
    (found,) = by_kind(objects, kind)
    return found
