"""kmock's Kubernetes emulator, with a real API server's write semantics where they matter.

kmock serves objects over HTTP (list, watch, get) but its writes are plain dict
merges with no versions. The operator's behaviour depends on more, so this
subclass handles every write itself, with :mod:`tests.operator.semantics`:

* server-side apply (``application/apply-patch+yaml``) with field managers,
  create-on-apply, removal of fields no longer applied, one controller
  reference at most (422), and the server's normalisation, defaults and
  dropped fields (``dropped``: a Kubernetes version that does not know one);
* RFC 7386 merge patch; PUT; POST; ``status`` as a subresource (its writes
  change nothing else, other writes do not change it);
* uid, creationTimestamp, a cluster-wide resourceVersion, ``generation``
  bumped when ``spec`` changes; resourceVersion preconditions on PUT and merge
  patch and uid preconditions on DELETE (409); immutable ConfigMaps (422);
* label and field selectors on list and watch (equality, inequality, existence);
* finalizers, owner-reference garbage collection (what the real collector does
  in the background, done at once) and CRD deletion (every instance goes; the
  CRD waits for instances held by a finalizer, as a real one does);
* ``faults``: refuse matching requests the way a webhook, quota or RBAC would.

Use it with ``@pytest.mark.kmock(cls=ApiServer)`` on a test module: the
``kmock`` fixture then is this server.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from typing_extensions import override

from tests.operator import semantics
from tests.operator.semantics import Obj, Path

APPLY = "application/apply-patch+yaml"
HANG_UP = "HANG-UP"  # not a Kubernetes event type: ends the watch streams
CRD = kmock.resource("apiextensions.k8s.io/v1/customresourcedefinitions")
ROUTES = kmock.resource("modelroute.io/v1alpha1/modelroutes")
EPOCH = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


@dataclass
class Fault:
    """Refuse requests matching every given field, with this status and message."""

    status: int
    message: str
    reason: str = "Forbidden"
    method: str | None = None
    plural: str | None = None
    name: str | None = None
    agent: str | None = None  # a substring of the User-Agent (one operator replica)

    def matches(self, request: kmock.Request) -> bool:
        plural = request.resource.plural if request.resource is not None else None
        agent = request.headers.get("User-Agent", "")
        return (
            (self.method is None or self.method == str(request.method.value))
            and (self.plural is None or self.plural == plural)
            and (self.name is None or self.name == request.name)
            and (self.agent is None or self.agent in agent)
        )


def _matches(selector: str, obj: Obj, labels: bool) -> bool:
    """An equality/existence label selector, or a field selector, against ``obj``."""
    values = (obj.get("metadata") or {}).get("labels") or {} if labels else None
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if _value(obj, key, values) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if _value(obj, key.rstrip("="), values) != value:
                return False
        elif term.startswith("!"):
            if _value(obj, term[1:], values) is not None:
                return False
        elif _value(obj, term, values) is None:
            return False
    return True


def _value(obj: Obj, key: str, labels: dict[str, str] | None) -> Any:
    if labels is not None:
        return labels.get(key)
    node: Any = obj
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    dropped: dict[str, list[Path]] = attrs.field(factory=dict)
    faults: list[Fault] = attrs.field(factory=list)
    _managed: dict[Any, dict[str, set[Path]]] = attrs.field(factory=dict, init=False)
    _appliers: set[str] = attrs.field(factory=set, init=False)
    _versions: Any = attrs.field(factory=lambda: itertools.count(1), init=False)
    _clock: Any = attrs.field(factory=lambda: itertools.count(0), init=False)
    _last_version: int = attrs.field(default=0, init=False)

    # -- reads: selectors on watches ------------------------------------------------------

    @override
    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        async for event in super()._serve_watch(request):
            if isinstance(event, dict) and event.get("type") == HANG_UP:
                return
            if isinstance(event, dict):
                if not _selected(request, event.get("object") or {}):
                    continue
                event = {**event, "object": self.served(request.resource, event["object"])}
            yield event

    async def hang_up(self) -> None:
        """End every watch stream, as an API server does after timeoutSeconds (the server
        notices a client that went away only when it writes to it)."""
        for bus in list(self._buses.values()):
            await bus.put({"type": HANG_UP, "object": {}})

    # -- writes ---------------------------------------------------------------------------

    @override
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        for fault in self.faults:
            if fault.matches(request):
                raise kmock.KubernetesError(
                    status=fault.status, reason=fault.reason, message=fault.message
                )
        method = str(request.method.value)
        if request.resource is None or method not in (*WRITES, "GET"):
            return await super()._handle(request)  # discovery
        if method == "GET":
            return await self._read(request)
        if request.name is None and method != "POST":
            return await super()._handle(request)
        async with self._lock:
            handler = getattr(self, f"_{method.lower()}")
            result = await handler(request)
        return aiohttp.web.json_response(self.served(request.resource, result))

    async def _read(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        """Reads served directly: kmock's reaction matching looks at every request recorded
        so far, which makes a long test quadratic."""
        if request.params.get("watch") == "true":
            response = aiohttp.web.StreamResponse()
            response.content_type = "application/json"
            assert request._raw_request is not None
            await response.prepare(request._raw_request)
            async for event in self._serve_watch(request):
                if isinstance(event, dict):
                    await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
            return response
        if request.name is None:
            items = [
                self.served(resource, copy.deepcopy(dict(obj.raw)))
                for (resource, namespace, _), obj in self._objects.items()
                if resource == request.resource
                and request.namespace in (None, namespace)
                and not obj.deleted
                and _selected(request, dict(obj.raw))
            ]
            metadata = {"resourceVersion": str(self._last_version)}
            return aiohttp.web.json_response({"metadata": metadata, "items": items})
        found = self.live(request.resource, request.namespace, request.name)
        if found is None:
            raise kmock.KubernetesError(
                status=404, reason="NotFound", message=f'"{request.name}" not found'
            )
        return aiohttp.web.json_response(self.served(request.resource, found))

    def live(self, resource: Any, namespace: str | None, name: str) -> Obj | None:
        key = (resource, namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return copy.deepcopy(dict(self._objects[key].raw))

    def _version(self) -> str:
        self._last_version = next(self._versions)
        return str(self._last_version)

    async def _store(self, resource: Any, obj: Obj, created: bool) -> Obj:
        key = (resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        obj["metadata"]["resourceVersion"] = self._version()
        if key in self._objects:
            history = self._objects[key]
            if not history.deleted:
                history.delete()
            history.create(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)
        event = "ADDED" if created else "MODIFIED"
        await self._buses[resource].put({"type": event, "object": self.served(resource, obj)})
        return obj

    def served(self, resource: Any, obj: Obj) -> Obj:
        """``obj`` as clients see it: with ``metadata.managedFields``."""
        result = copy.deepcopy(obj)
        metadata = result.get("metadata") or {}
        managed = self._managed.get((resource, metadata.get("namespace"), metadata.get("name")))
        if managed:
            metadata["managedFields"] = [
                {
                    "manager": manager,
                    "operation": "Apply" if manager in self._appliers else "Update",
                    "apiVersion": obj.get("apiVersion"),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": semantics.fields_v1(paths),
                }
                for manager, paths in sorted(managed.items())
                if paths
            ]
        return result

    async def _remove(self, resource: Any, obj: Obj) -> None:
        metadata = obj["metadata"]
        key = (resource, metadata.get("namespace"), metadata["name"])
        self._objects[key].delete()
        self._managed.pop(key, None)
        await self._buses[resource].put({"type": "DELETED", "object": copy.deepcopy(obj)})
        await self._collect(str(metadata.get("uid")))
        if resource == ROUTES:
            await self._finish_crd()

    def _new_object(self, obj: Obj) -> Obj:
        metadata = obj.setdefault("metadata", {})
        metadata["uid"] = str(uuid.uuid4())
        at = EPOCH + datetime.timedelta(seconds=next(self._clock))
        metadata["creationTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if "spec" in obj:
            metadata["generation"] = 1
        return obj

    def _finish(self, resource: Any, before: Obj | None, after: Obj, manager: str) -> Obj:
        """Server-side bookkeeping common to every write that keeps the object."""
        if before is not None:
            if (before.get("spec") != after.get("spec")) and "generation" in before["metadata"]:
                after["metadata"]["generation"] = int(before["metadata"]["generation"]) + 1
            if before.get("immutable") and before.get("data") != after.get("data"):
                raise kmock.KubernetesError(
                    status=422,
                    reason="Invalid",
                    message=f'ConfigMap "{after["metadata"]["name"]}" is invalid: data: '
                    "Forbidden: field is immutable when `immutable` is set",
                )
        return semantics.with_defaults(after)

    def _own(self, key: Any, before: Obj | None, after: Obj, manager: str) -> None:
        """An update (not an apply) takes the fields whose value it changed."""
        managed = self._managed.setdefault(key, {})
        changed = semantics.changed_paths(before or {}, after)
        for name in managed:
            if name != manager:
                managed[name] -= changed
        managed.setdefault(manager, set()).update(changed)

    async def _post(self, request: kmock.Request) -> Obj:
        obj = copy.deepcopy(request.data)
        namespace = request.namespace or obj.get("metadata", {}).get("namespace")
        obj.setdefault("metadata", {})["namespace"] = namespace
        name = obj["metadata"].get("name")
        if name is None:
            obj["metadata"]["name"] = name = (
                f"{obj['metadata'].get('generateName', 'x')}{uuid.uuid4().hex[:5]}"
            )
        if self.live(request.resource, namespace, name) is not None:
            raise kmock.KubernetesError(
                status=409, reason="AlreadyExists", message=f"{name} exists"
            )
        obj = self._finish(request.resource, None, self._new_object(obj), "")
        self._own((request.resource, namespace, name), None, obj, _manager(request))
        return await self._store(request.resource, obj, created=True)

    async def _put(self, request: kmock.Request) -> Obj:
        live = self._existing(request)
        new = copy.deepcopy(request.data)
        _check_version(new, live)
        new["metadata"] = {**live["metadata"], **new["metadata"]}
        new = self._finish(request.resource, live, new, "")
        self._own(self._key(request), live, new, _manager(request))
        return await self._store(request.resource, new, created=False)

    async def _patch(self, request: kmock.Request) -> Obj:
        content_type = request.headers.get("Content-Type", "")
        if content_type.startswith(APPLY):
            return await self._apply(request)
        if content_type.startswith("application/json-patch+json"):
            return await self._json_patch(request)
        live = self._existing(request)
        patch = copy.deepcopy(request.data)
        _check_version(patch, live)
        if request.subresource == "status":
            patch = {"status": patch.get("status")}
        else:
            patch.pop("status", None)
        new = semantics.merge_patch(live, patch)
        new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        if new == live:
            return live
        new = self._finish(request.resource, live, new, "")
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            await self._remove(request.resource, new)
            return new
        self._own(self._key(request), live, new, _manager(request))
        return await self._store(request.resource, new, created=False)

    async def _json_patch(self, request: kmock.Request) -> Obj:
        """RFC 6902, on the object as served; a replaced managedFields sets the owners."""
        key = self._key(request)
        live = self._existing(request)
        try:
            new = jsonpatch.apply_patch(self.served(request.resource, live), request.data)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise kmock.KubernetesError(status=409, reason="Conflict", message=str(exc)) from exc
        entries = new["metadata"].pop("managedFields", None)
        if entries is not None:
            self._managed[key] = {
                e["manager"]: semantics.paths_of(e.get("fieldsV1") or {}) for e in entries
            }
            self._appliers |= {e["manager"] for e in entries if e.get("operation") == "Apply"}
        new = self._finish(request.resource, live, new, "")
        return await self._store(request.resource, new, created=False)

    async def _apply(self, request: kmock.Request) -> Obj:
        key = self._key(request)
        live = self.live(*key)
        config = copy.deepcopy(request.data)
        config.pop("status", None)
        config = semantics.drop(semantics.normalise(config), self.dropped)
        config.setdefault("metadata", {})["namespace"] = request.namespace
        manager = str(request.params.get("fieldManager") or "")
        assert manager, "server-side apply requires a fieldManager"
        self._appliers.add(manager)
        assert request.params.get("force") == "true", "the operator forces its own fields"
        try:
            new, managed = semantics.apply(live, config, manager, self._managed.get(key, {}))
        except semantics.Invalid as exc:
            raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc
        if live is None:
            new = self._new_object(new)
        new = self._finish(request.resource, live, new, manager)
        self._managed[key] = managed
        if live is not None:
            new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            if new == live:
                return live  # a no-op apply changes nothing, not even the resourceVersion
        return await self._store(request.resource, new, created=live is None)

    async def _delete(self, request: kmock.Request) -> Obj:
        live = self._existing(request)
        preconditions = (request.data or {}).get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != live["metadata"].get("uid"):
            raise kmock.KubernetesError(
                status=409, reason="Conflict", message="Precondition failed: UID in precondition"
            )
        if request.resource == CRD:
            return await self._delete_crd(live)
        if live["metadata"].get("finalizers"):
            if not live["metadata"].get("deletionTimestamp"):
                live["metadata"]["deletionTimestamp"] = EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ")
                return await self._store(request.resource, live, created=False)
            return live
        await self._remove(request.resource, live)
        return live

    async def _delete_crd(self, crd: Obj) -> Obj:
        for (resource, namespace, name), obj in list(self._objects.items()):
            if resource == ROUTES and not obj.deleted:
                route = self.live(resource, namespace, name)
                assert route is not None
                if route["metadata"].get("finalizers"):
                    route["metadata"]["deletionTimestamp"] = EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ")
                    await self._store(resource, route, created=False)
                else:
                    await self._remove(resource, route)
        crd["metadata"]["deletionTimestamp"] = EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ")
        await self._store(CRD, crd, created=False)
        await self._finish_crd()
        return crd

    async def _finish_crd(self) -> None:
        """A CRD being deleted goes once its last instance has."""
        if any(r == ROUTES and not o.deleted for (r, _, _), o in self._objects.items()):
            return
        for (resource, _, name), obj in list(self._objects.items()):
            if resource == CRD and not obj.deleted and obj.raw["metadata"].get("deletionTimestamp"):
                crd = self.live(CRD, None, name)
                assert crd is not None
                self._objects[CRD, None, name].delete()
                await self._buses[CRD].put({"type": "DELETED", "object": crd})

    async def _collect(self, uid: str) -> None:
        """The garbage collector: delete what ``uid`` owned (background propagation)."""
        for (resource, namespace, name), obj in list(self._objects.items()):
            if obj.deleted:
                continue
            refs = (obj.raw.get("metadata") or {}).get("ownerReferences") or []
            if any(ref.get("uid") == uid for ref in refs):
                dependent = self.live(resource, namespace, name)
                assert dependent is not None
                await self._remove(resource, dependent)

    def _key(self, request: kmock.Request) -> Any:
        return (request.resource, request.namespace, request.name)

    def _existing(self, request: kmock.Request) -> Obj:
        live = self.live(*self._key(request))
        if live is None:
            raise kmock.KubernetesError(
                status=404, reason="NotFound", message=f'"{request.name}" not found'
            )
        return live

    def managers(self, resource: Any, namespace: str, name: str) -> dict[str, set[Path]]:
        return self._managed.get((resource, namespace, name), {})


WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def _selected(request: kmock.Request, obj: Obj) -> bool:
    labels = request.params.get("labelSelector")
    fields = request.params.get("fieldSelector")
    return (not labels or _matches(labels, obj, True)) and (
        not fields or _matches(fields, obj, False)
    )


def _manager(request: kmock.Request) -> str:
    """The field manager of an update: named, else the User-Agent up to its first "/"."""
    agent = request.headers.get("User-Agent", "unknown").split("/")[0]
    return str(request.params.get("fieldManager") or agent)


def _check_version(body: Obj, live: Obj) -> None:
    wanted = (body.get("metadata") or {}).get("resourceVersion")
    if wanted and wanted != live["metadata"].get("resourceVersion"):
        raise kmock.KubernetesError(
            status=409,
            reason="Conflict",
            message="the object has been modified; please apply your changes to the latest "
            "version and try again",
        )


def requests_by(server: kmock.KubernetesEmulator, agent: str) -> Iterable[kmock.Request]:
    return [r for r in server if agent in r.headers.get("User-Agent", "")]
