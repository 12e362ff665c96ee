"""The few Kubernetes API calls the reconciler makes, and nothing else.

The operator touches six kinds with five verbs; a generic typed client would
hide which. This one speaks plain dicts over the ``kubernetes`` package's
connection setup (kubeconfig or in-cluster service account), so the
ClusterRole in ``manifests/20-rbac.yaml`` can be read off :data:`KINDS` and the
methods below. Calls are synchronous: kopf runs sync handlers in worker threads.

Errors keep the API server's facts: :class:`ApiError` carries the HTTP status
and the ``Status`` object's reason and message; :class:`Conflict` (409) is the
one a caller acts on (create raced with another writer: patch instead).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import kubernetes


@dataclass(frozen=True, slots=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{prefix}/namespaces/{quote(namespace)}/{self.plural}"
        return path if name is None else f"{path}/{quote(name)}"


CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SERVICE = Kind("v1", "Service", "services")
SECRET = Kind("v1", "Secret", "secrets")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")

CHILD_KINDS: tuple[Kind, ...] = (CONFIG_MAP, DEPLOYMENT, SERVICE, PDB, HPA)
"""Kinds the operator creates, patches, lists and deletes; Secrets it only reads."""

KINDS = {(kind.api_version, kind.kind): kind for kind in (*CHILD_KINDS, SECRET)}


def kind_of(obj: Mapping[str, Any]) -> Kind:
    return KINDS[(obj["apiVersion"], obj["kind"])]


class ApiError(Exception):
    """The API server refused a request; ``status`` is the HTTP status code."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}: {message}")


class Conflict(ApiError):
    """409: the object exists already (create) or changed meanwhile."""


class Kube:
    """Create, read, merge-patch, list and delete namespaced objects as dicts."""

    TIMEOUT = (5.0, 30.0)  # connect, read

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = api

    @classmethod
    def connect(cls) -> Kube:
        """In a pod, the service account; elsewhere, the kubeconfig (``$KUBECONFIG``)."""
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient())

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        if query:
            path = f"{path}?{urlencode(query)}"
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*request, _request_timeout=self.TIMEOUT)
        data = response.read()  # type: ignore[no-untyped-call]
        status = int(response.status)
        payload = json.loads(data) if data else None
        if 200 <= status < 300:
            return payload
        reason = payload.get("reason", "") if isinstance(payload, dict) else ""
        message = payload.get("message", "") if isinstance(payload, dict) else str(data)
        error = Conflict if status == 409 else ApiError
        raise error(status, reason or str(response.reason), message)

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            result: dict[str, Any] = self._call("GET", kind.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def list(self, kind: Kind, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        result = self._call("GET", kind.path(namespace), query={"labelSelector": label_selector})
        items: list[dict[str, Any]] = result.get("items") or []
        return items

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind, namespace = kind_of(obj), obj["metadata"]["namespace"]
        result: dict[str, Any] = self._call("POST", kind.path(namespace), body=obj)
        return result

    def patch(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch of ``obj`` onto the live object (lists are replaced whole)."""
        metadata = obj["metadata"]
        result: dict[str, Any] = self._call(
            "PATCH",
            kind_of(obj).path(metadata["namespace"], metadata["name"]),
            body=obj,
            content_type="application/merge-patch+json",
        )
        return result

    def delete(self, kind: Kind, namespace: str, name: str) -> None:
        """Delete in the background; an object already gone is not an error."""
        try:
            self._call(
                "DELETE",
                kind.path(namespace, name),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                },
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
