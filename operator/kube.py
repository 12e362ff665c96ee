"""The few Kubernetes API calls the operator makes, and nothing else.

The operator touches a handful of kinds with a handful of verbs; a generic
typed client would hide which. This one speaks plain dicts over the
``kubernetes`` package's connection setup (kubeconfig or in-cluster service
account, whose rotating token it re-reads), so the RBAC rules in
``manifests/20-rbac.yaml`` can be read off :data:`KINDS` and the methods below:

* children are written with **server-side apply** (:meth:`Kube.apply`) under the
  field manager ``modelroute``, forcing conflicts: the operator owns exactly the
  fields it renders, a field it stops rendering is removed by the API server,
  and fields other controllers own (the HPA's ``replicas``) are left to them.
  An apply that creates an object is authorised as ``create`` as well as
  ``patch``;
* reads are list + watch (:meth:`Kube.list`, :meth:`Kube.watch`) feeding the
  informers' caches, and a GET only where a name must be checked before it is
  first written (:meth:`Kube.get`);
* deletes carry the uid they mean as a precondition, so an object recreated
  under the same name by someone else is never deleted by mistake.

Errors keep the API server's facts: :class:`ApiError` carries the HTTP status
and the ``Status`` object's reason and message (a webhook's or a quota's
refusal reaches the route's condition word for word); :class:`Conflict` (409)
is the one callers act on. Every request is counted by verb, resource and
status code (:data:`RequestHook`), and requests other than watches share one
token bucket, so a burst of work (an upgrade touching every route) cannot
flood the API server.

Calls are synchronous: the controller runs them in worker threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import kubernetes
import urllib3

from modelroute.spec import API_VERSION, KIND, PLURAL

FIELD_MANAGER = "modelroute"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True, slots=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(
        self, namespace: str | None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The REST path; ``namespace=None`` lists or watches across all namespaces."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{prefix}/namespaces/{quote(namespace)}" if namespace else prefix
        path = f"{path}/{self.plural}"
        if name is not None:
            path = f"{path}/{quote(name)}"
        if subresource is not None:
            path = f"{path}/{subresource}"
        return path


ROUTE = Kind(API_VERSION, KIND, PLURAL)
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SERVICE = Kind("v1", "Service", "services")
SECRET = Kind("v1", "Secret", "secrets")
EVENT = Kind("v1", "Event", "events")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases")

CHILD_KINDS: tuple[Kind, ...] = (CONFIG_MAP, DEPLOYMENT, SERVICE, PDB, HPA)
"""Kinds the operator applies, watches and deletes; Secrets it only watches."""

KINDS = {
    (kind.api_version, kind.kind): kind for kind in (*CHILD_KINDS, ROUTE, SECRET, EVENT, LEASE)
}


def kind_of(obj: Mapping[str, Any]) -> Kind:
    return KINDS[(obj["apiVersion"], obj["kind"])]


class ApiError(Exception):
    """The API server refused a request (or could not be reached: ``status`` 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}" if status else message)


class Conflict(ApiError):
    """409: the object exists already, or changed since the version the request named."""


RequestHook = Callable[[str, str, int], None]
"""Called after every request with (verb, resource, HTTP status; 0 if none came back)."""


class TokenBucket:
    """At most ``rate`` requests a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


WRITES = frozenset({"apply", "patch", "create", "update", "delete"})
QPS = 20.0  # client-go's controller default; bursts of 40
BURST = 40


class WatchStream:
    """The events of one watch request; :meth:`close` ends it from any thread."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def __iter__(self) -> Iterator[dict[str, Any]]:
        buffer = b""
        for chunk in self._response.stream(amt=None, decode_content=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    def close(self) -> None:
        """End the watch: unblock a read in progress in another thread, and close the
        connection (mid-stream, it cannot go back to the pool)."""
        shutdown = getattr(self._response, "shutdown", None)
        if shutdown is not None:
            shutdown()
        self._response.close()


class Kube:
    """Apply, read, watch, patch status, post Events and delete, as plain dicts."""

    TIMEOUT = (5.0, 30.0)  # connect, read
    WATCH_SECONDS = 300  # the server ends each watch after this long; the informer renews it

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        user_agent: str = "modelroute-operator",
        on_request: RequestHook | None = None,
        bucket: TokenBucket | None = None,
        fence: Callable[[], bool] | None = None,
    ) -> None:
        self._api = api
        self._api.user_agent = user_agent
        self._on_request = on_request
        self._bucket = bucket or TokenBucket(QPS, BURST)
        self._fence = fence

    def fenced(self, fence: Callable[[], bool]) -> Kube:
        """The same connection, refusing every write while ``fence()`` is False (the
        leader elector's :meth:`~modelroute.operator.leader.LeaderElector.holding`)."""
        return Kube(
            self._api,
            user_agent=str(self._api.user_agent),
            on_request=self._on_request,
            bucket=self._bucket,
            fence=fence,
        )

    @classmethod
    def connect(
        cls,
        *,
        user_agent: str = "modelroute-operator",
        on_request: RequestHook | None = None,
        pool_size: int = 32,
        bucket: TokenBucket | None = None,
    ) -> Kube:
        """In a pod, the service account; elsewhere, the kubeconfig (``$KUBECONFIG``)."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        configuration.connection_pool_maxsize = pool_size  # long-lived watches plus the workers
        api = kubernetes.client.ApiClient(configuration)
        return cls(api, user_agent=user_agent, on_request=on_request, bucket=bucket)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, str] | None,
        content_type: str,
        timeout: tuple[float, float] | None,
    ) -> Any:
        if query:
            path = f"{path}?{urlencode(query)}"
        if isinstance(body, dict) and content_type == APPLY_PATCH:
            body = json.dumps(body)  # JSON is YAML; sent as is
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self._api.call_api(*request, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiError(0, "Unreachable", f"Kubernetes API unreachable: {exc}") from exc

    def _call(
        self,
        verb: str,
        method: str,
        path: str,
        resource: str,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        if verb in WRITES and self._fence is not None and not self._fence():
            raise ApiError(0, "NotLeader", "this replica does not hold the leader-election lease")
        self._bucket.take()
        status = 0
        try:
            response = self._send(method, path, body, query, content_type, self.TIMEOUT)
            status = int(response.status)
            try:
                data = response.read()
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise ApiError(0, "Unreachable", f"Kubernetes API: {exc}") from exc
        finally:
            if self._on_request is not None:
                self._on_request(verb, resource, status)
        payload = json.loads(data) if data else None
        if 200 <= status < 300:
            return payload
        raise _error(status, str(response.reason), payload, data)

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            result: dict[str, Any] = self._call(
                "get", "GET", kind.path(namespace, name), kind.plural
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """The objects and the list's resourceVersion (where a watch picks up)."""
        query = _selectors(label_selector, field_selector)
        result = self._call("list", "GET", kind.path(namespace), kind.plural, query=query)
        items: list[dict[str, Any]] = result.get("items") or []
        for item in items:  # lists leave these out of their items
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items, str((result.get("metadata") or {}).get("resourceVersion") or "")

    def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> WatchStream:
        """Changes after ``resource_version``; the server ends the stream within WATCH_SECONDS."""
        query = {
            **_selectors(label_selector, field_selector),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.WATCH_SECONDS),
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        response = self._send(
            "GET",
            kind.path(namespace),
            None,
            query,
            "application/json",
            (self.TIMEOUT[0], self.WATCH_SECONDS + 30.0),
        )
        status = int(response.status)
        if self._on_request is not None:
            self._on_request("watch", kind.plural, status)
        if status != 200:
            data = response.read()
            payload = json.loads(data) if data else None
            raise _error(status, str(response.reason), payload, data)
        return WatchStream(response.response)

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` as field manager ``modelroute``, creating it if need be."""
        kind, metadata = kind_of(obj), obj["metadata"]
        result: dict[str, Any] = self._call(
            "apply",
            "PATCH",
            kind.path(metadata["namespace"], metadata["name"]),
            kind.plural,
            body=dict(obj),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type=APPLY_PATCH,
        )
        return result

    def merge_patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """RFC 7386 merge patch: absent keys are kept, ``None`` deletes, lists are replaced."""
        result: dict[str, Any] = self._call(
            "patch",
            "PATCH",
            kind.path(namespace, name, subresource),
            f"{kind.plural}/{subresource}" if subresource else kind.plural,
            body=dict(patch),
            query={"fieldManager": FIELD_MANAGER},
            content_type=MERGE_PATCH,
        )
        return result

    def json_patch(
        self, kind: Kind, namespace: str, name: str, operations: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """RFC 6902 JSON patch (its ``test`` operations make it conditional)."""
        result: dict[str, Any] = self._call(
            "patch",
            "PATCH",
            kind.path(namespace, name),
            kind.plural,
            body=[dict(operation) for operation in operations],
            content_type=JSON_PATCH,
        )
        return result

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind, namespace = kind_of(obj), obj["metadata"].get("namespace")
        result: dict[str, Any] = self._call(
            "create",
            "POST",
            kind.path(namespace),
            kind.plural,
            body=dict(obj),
            query={"fieldManager": FIELD_MANAGER},
        )
        return result

    def replace(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: fails with :class:`Conflict` unless ``metadata.resourceVersion`` is current."""
        kind, metadata = kind_of(obj), obj["metadata"]
        result: dict[str, Any] = self._call(
            "update",
            "PUT",
            kind.path(metadata.get("namespace"), metadata["name"]),
            kind.plural,
            body=dict(obj),
            query={"fieldManager": FIELD_MANAGER},
        )
        return result

    def delete(self, kind: Kind, namespace: str, name: str, uid: str | None = None) -> None:
        """Delete in the background, only the object with ``uid`` if given; gone is fine."""
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("delete", "DELETE", kind.path(namespace, name), kind.plural, body=body)
        except ApiError as exc:
            if exc.status != 404:
                raise


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    query = {}
    if label_selector:
        query["labelSelector"] = label_selector
    if field_selector:
        query["fieldSelector"] = field_selector
    return query


def _error(status: int, http_reason: str, payload: Any, data: bytes) -> ApiError:
    if isinstance(payload, dict):
        reason = str(payload.get("reason") or http_reason)
        message = str(payload.get("message") or "")
    else:
        reason, message = http_reason, data.decode(errors="replace")[:500]
    error = Conflict if status == 409 else ApiError
    return error(status, reason, message)
