"""The control loop: watches in, reconciles out, one route at a time per worker.

Informers keep local copies of the ModelRoutes, of every child the operator
manages (label ``app.kubernetes.io/managed-by=modelroute-operator``) and of
the Secrets routes may name (key names only; Helm release and service-account
token Secrets are filtered out by the server). Any change to a route, to one
of its children (a Deployment becoming ready, a child deleted or edited by
hand) or to a Secret it names queues that route, and a worker reconciles it
from the caches: a steady cluster costs no requests beyond the watches
themselves. A jittered resync walks every route once per ``resync_seconds``,
spread over the period, as a safety net.

A failed write retries the route with exponential backoff (the status says
``ReconcileError`` meanwhile); a success resets it. Status is written only
when it changed, and every write goes through the fenced client: a replica
that is not the leader cannot write at all.

Routes from before this operator carried kopf's finalizer and bookkeeping
annotations; they are removed on first sight, so such a route deletes cleanly
once this operator has run.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

from modelroute.operator.converge import (
    Live,
    Lookup,
    Snapshot,
    controller_of,
    snapshot_of,
    upgraded_managed_fields,
)
from modelroute.operator.informer import Informer, Obj
from modelroute.operator.kube import (
    CHILD_KINDS,
    ROUTE,
    SECRET,
    ApiError,
    Kind,
    Kube,
    kind_of,
)
from modelroute.operator.metrics import OperatorMetrics
from modelroute.operator.reconcile import Event, Outcome, reconcile
from modelroute.operator.render import MANAGED_BY, Manifest, plain
from modelroute.operator.settings import OperatorSettings
from modelroute.operator.status import timestamp
from modelroute.operator.workqueue import ShutDown, WorkQueue
from modelroute.spec import KIND

log = logging.getLogger("modelroute.operator")

RouteKey = tuple[str, str]  # namespace, name
MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
SECRET_FIELDS = "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token"
LEGACY_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
LEGACY_ANNOTATIONS = (
    "modelroute.io/last-handled-configuration",
    "modelroute.io/reconcile",
    "modelroute.io/resync",
)


def secret_keys_only(secret: Obj) -> Obj:
    """What is kept of a Secret: its name and the names of its keys, never a value."""
    metadata = secret.get("metadata") or {}
    keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
        "keys": sorted(keys),
    }


def referenced_secrets(spec: Any) -> set[str]:
    """Names of every Secret a route spec refers to (any ``...SecretRef: {name: ...}``)."""
    found: set[str] = set()
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if str(key).endswith("SecretRef") and isinstance(value, Mapping) and "name" in value:
                found.add(str(value["name"]))
            else:
                found |= referenced_secrets(value)
    elif isinstance(spec, list):
        for item in spec:
            found |= referenced_secrets(item)
    return found


class Controller:
    """Informers, a work queue and workers for every route this operator serves."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        metrics: OperatorMetrics,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.now = now
        self.queue = WorkQueue()
        namespaces: tuple[str | None, ...] = settings.namespaces or (None,)
        self.routes = {ns: Informer(kube, ROUTE, ns, self._on_route) for ns in namespaces}
        self.children = {
            kind: {
                ns: Informer(kube, kind, ns, self._on_child, label_selector=MANAGED_SELECTOR)
                for ns in namespaces
            }
            for kind in CHILD_KINDS
        }
        self.secrets = {
            ns: Informer(
                kube,
                SECRET,
                ns,
                self._on_secret,
                field_selector=SECRET_FIELDS,
                transform=secret_keys_only,
            )
            for ns in namespaces
        }
        self._lock = threading.Lock()
        self._owned: dict[str, set[tuple[Kind, str, str]]] = {}  # route uid → children
        self._secret_refs: dict[RouteKey, set[str]] = {}
        self._snapshots: dict[str, Snapshot] = {}  # child uid → last apply's answer
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------------

    def informers(self) -> list[Informer]:
        return [
            *self.routes.values(),
            *(i for by_ns in self.children.values() for i in by_ns.values()),
            *self.secrets.values(),
        ]

    def start(self) -> None:
        for informer in self.informers():
            informer.start()
        self._spawn(self._run, "controller")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers())

    def alive(self) -> bool:
        return all(i.alive() for i in self.informers()) and all(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stopped.set()
        self.queue.shut_down()
        for informer in self.informers():
            informer.stop()
        for thread in self._threads:
            thread.join(timeout=30)
        self.metrics.forget_routes()

    def _run(self) -> None:
        """Wait for every cache, then start the workers and the resync."""
        while not self.synced():
            if self._stopped.wait(0.05):
                return
        log.info("caches synced: %d routes", sum(len(i.items()) for i in self.routes.values()))
        for number in range(self.settings.workers):
            self._spawn(self._work, f"worker-{number}")
        self._resync()

    def _resync(self) -> None:
        """Queue every route once per period, in random order, evenly spaced."""
        period = self.settings.resync_seconds
        while not self._stopped.is_set():
            keys = [key for informer in self.routes.values() for key in _keys(informer)]
            random.shuffle(keys)
            if not keys:
                self._stopped.wait(period)
                continue
            gap = period / len(keys)
            for key in keys:
                if self._stopped.wait(gap):
                    return
                self.queue.add(key)

    # -- events --------------------------------------------------------------------------

    def _on_route(self, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            if new is None:
                self._secret_refs.pop(key, None)
            else:
                self._secret_refs[key] = referenced_secrets(new.get("spec"))
        self.queue.add(key)

    def _on_child(self, old: Obj | None, new: Obj | None) -> None:
        for obj, present in ((old, False), (new, True)):
            if obj is None:
                continue
            owner = controller_of(obj)
            if owner is None or owner.get("kind") != KIND:
                continue
            self._index(obj, str(owner.get("uid")), present)
            self.queue.add((obj["metadata"]["namespace"], str(owner.get("name"))))

    def _index(self, obj: Obj, owner_uid: str, present: bool) -> None:
        entry = (kind_of(obj), obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            children = self._owned.setdefault(owner_uid, set())
            if present:
                children.add(entry)
            else:
                children.discard(entry)
                self._snapshots.pop(str(obj["metadata"].get("uid") or ""), None)

    def _on_secret(self, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        with self._lock:
            keys = [
                k for k, refs in self._secret_refs.items() if k[0] == namespace and name in refs
            ]
        for key in keys:
            self.queue.add(key)

    # -- work ----------------------------------------------------------------------------

    def _informer(self, table: Mapping[str | None, Informer], namespace: str) -> Informer | None:
        return table.get(namespace) or table.get(None)

    def _work(self) -> None:
        while True:
            try:
                key = self.queue.get()
            except ShutDown:
                return
            try:
                self.process(key)
            finally:
                self.queue.done(key)
                self.metrics.queue_depth.set(len(self.queue))

    def process(self, key: Hashable) -> None:
        namespace, name = cast(RouteKey, key)
        informer = self._informer(self.routes, namespace)
        route = informer.get(namespace, name) if informer else None
        label = f"{namespace}/{name}"
        if route is None:
            self.metrics.route_gone(label)
            return
        started = time.monotonic()
        try:
            route = self._migrate(route)
            if route["metadata"].get("deletionTimestamp"):
                return  # being deleted: the garbage collector removes the children
            outcome = reconcile(route, _View(self, namespace), self.settings, self.now())
            self._write_status(route, outcome)
        except ApiError as exc:
            log.warning("%s: %s; retrying", label, exc)
            self.metrics.reconciled(label, None, time.monotonic() - started)
            self.queue.retry(key)
            return
        except Exception:
            log.exception("%s: reconcile failed; retrying", label)
            self.metrics.reconciled(label, None, time.monotonic() - started)
            self.queue.retry(key)
            return
        self.metrics.reconciled(label, outcome, time.monotonic() - started)
        for event in outcome.events:
            self._post(route, event)
        if outcome.changes:
            log.info("%s: %s", label, ", ".join(str(change) for change in outcome.changes))
        if outcome.retry:
            delay = self.queue.retry(key)
            log.warning("%s: %s; again in %.1fs", label, outcome.reason, delay)
        else:
            self.queue.forget(key)

    def _migrate(self, route: Obj) -> Obj:
        """Drop the finalizer and annotations kopf left on routes of earlier versions."""
        metadata = route["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        stale = [key for key in LEGACY_ANNOTATIONS if key in (metadata.get("annotations") or {})]
        if LEGACY_FINALIZER not in finalizers and not stale:
            return route
        patch: dict[str, Any] = {
            "metadata": {
                "resourceVersion": metadata.get("resourceVersion"),
                "finalizers": [f for f in finalizers if f != LEGACY_FINALIZER] or None,
            }
        }
        if stale:
            patch["metadata"]["annotations"] = dict.fromkeys(stale)
        result = self.kube.merge_patch(ROUTE, metadata["namespace"], metadata["name"], patch)
        log.info("%s/%s: removed kopf's finalizer", metadata["namespace"], metadata["name"])
        self._put_route(result)
        return result

    def _put_route(self, route: Obj) -> None:
        informer = self._informer(self.routes, route["metadata"]["namespace"])
        if informer is not None:
            informer.put(route)

    def _write_status(self, route: Obj, outcome: Outcome) -> None:
        current = plain(route.get("status") or {})
        patch = {key: value for key, value in outcome.status.items() if current.get(key) != value}
        if not patch:
            return
        metadata = route["metadata"]
        result = self.kube.merge_patch(
            ROUTE, metadata["namespace"], metadata["name"], {"status": patch}, "status"
        )
        self._put_route(result)

    def _post(self, route: Obj, event: Event) -> None:
        metadata = route["metadata"]
        at = timestamp(self.now())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{time.time_ns():x}{uuid.uuid4().hex[:4]}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": route.get("apiVersion", ROUTE.api_version),
                "kind": KIND,
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": "modelroute-operator"},
            "reportingComponent": "modelroute.io/operator",
            "reportingInstance": self.settings.identity[:128],
            "firstTimestamp": at,
            "lastTimestamp": at,
            "count": 1,
        }
        try:
            self.kube.create(body)
        except ApiError as exc:
            log.warning("event %s for %s: %s", event.reason, metadata["name"], exc)

    # -- what a reconcile reads and writes ------------------------------------------------

    def owned(self, namespace: str, uid: str) -> list[Live]:
        with self._lock:
            entries = list(self._owned.get(uid, ()))
        found = []
        for kind, ns, name in entries:
            informer = self._informer(self.children[kind], ns)
            obj = informer.get(ns, name) if informer else None
            if ns == namespace and obj is not None:
                found.append(obj)
        return found

    def applied(self, applied: Manifest, answer: Live) -> None:
        kind = kind_of(answer)
        namespace = answer["metadata"]["namespace"]
        informer = self._informer(self.children[kind], namespace)
        if informer is not None:
            informer.put(answer)
        owner = controller_of(answer)
        if owner is not None:
            self._index(answer, str(owner.get("uid")), True)
        with self._lock:
            self._snapshots[str(answer["metadata"].get("uid") or "")] = snapshot_of(applied, answer)

    def deleted(self, obj: Live) -> None:
        kind, metadata = kind_of(obj), obj["metadata"]
        informer = self._informer(self.children[kind], metadata["namespace"])
        if informer is not None:
            informer.forget(metadata["namespace"], metadata["name"])
        owner = controller_of(obj)
        if owner is not None:
            self._index(obj, str(owner.get("uid")), False)

    def snapshot(self, uid: str) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(uid)


def _keys(informer: Informer) -> Iterable[RouteKey]:
    for route in informer.items():
        yield route["metadata"]["namespace"], route["metadata"]["name"]


class _View:
    """:class:`~modelroute.operator.reconcile.Cluster` for one namespace: caches first."""

    def __init__(self, controller: Controller, namespace: str) -> None:
        self._c = controller
        self._ns = namespace

    def secret_keys(self, name: str) -> Collection[str] | None:
        informer = self._c._informer(self._c.secrets, self._ns)
        secret = informer.get(self._ns, name) if informer else None
        return None if secret is None else list(secret["keys"])

    def children(self, uid: str) -> Iterable[Live]:
        return self._c.owned(self._ns, uid)

    @property
    def lookup(self) -> Lookup:
        def find(kind: Kind, name: str) -> Live | None:
            informer = self._c._informer(self._c.children[kind], self._ns)
            cached = informer.get(self._ns, name) if informer else None
            return cached if cached is not None else self._c.kube.get(kind, self._ns, name)

        return find

    def snapshot(self, uid: str) -> Snapshot | None:
        return self._c.snapshot(uid)

    def apply(self, obj: Manifest) -> Live:
        kind, name = kind_of(obj), obj["metadata"]["name"]
        informer = self._c._informer(self._c.children[kind], self._ns)
        live = informer.get(self._ns, name) if informer else None
        upgraded = upgraded_managed_fields(live) if live is not None else None
        if live is not None and upgraded is not None:  # once, for a child of the old operator
            version = live["metadata"].get("resourceVersion")
            self._c.kube.json_patch(
                kind,
                self._ns,
                name,
                [
                    {"op": "test", "path": "/metadata/resourceVersion", "value": version},
                    {"op": "replace", "path": "/metadata/managedFields", "value": upgraded},
                ],
            )
        answer = self._c.kube.apply(obj)
        answer.setdefault("apiVersion", obj["apiVersion"])
        answer.setdefault("kind", obj["kind"])
        self._c.applied(obj, answer)
        return answer

    def delete(self, obj: Live) -> None:
        metadata = obj["metadata"]
        self._c.kube.delete(kind_of(obj), self._ns, metadata["name"], metadata.get("uid"))
        self._c.deleted(obj)
