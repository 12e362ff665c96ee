"""One reconcile of one ModelRoute: validate, render, check names, converge, observe.

Run for every change to the route, to one of its children or to a Secret it
names, and on the periodic resync; nothing here depends on *why* it runs. The
order is what keeps a route safe: every check (parse, names, Secrets, the
ownership of every child name) runs before the first write, so a bad spec or a
name held by someone else changes no child and the routers keep serving the
last good config.

The world is reached through :class:`Cluster` (the controller's caches and API
client; an in-memory fake in tests), and the result is data: the status to
write, the Events to post, and whether to retry.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from modelroute.operator.checks import validate
from modelroute.operator.converge import (
    Change,
    Live,
    Lookup,
    Snapshot,
    WriteFailed,
    execute,
    plan,
)
from modelroute.operator.kube import ApiError
from modelroute.operator.render import Manifest, child_name, plain, render, served_regions
from modelroute.operator.settings import OperatorSettings
from modelroute.operator.status import (
    RegionState,
    Status,
    blocked_status,
    condition,
    invalid_status,
    running_status,
)
from modelroute.spec import parse_route

MAX_EVENTS = 10


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    events: list[Event] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    retry: bool = False
    """A write failed, or a name is taken: reconcile again after a backoff."""

    @property
    def reason(self) -> str:
        ready = condition(self.status, "Ready") or {}
        return str(ready.get("reason", ""))


class Cluster(Protocol):
    """What a reconcile reads and writes, for the route's namespace."""

    def secret_keys(self, name: str) -> Collection[str] | None:
        """The keys of Secret ``name``, or None if there is no such Secret."""

    def children(self, uid: str) -> Iterable[Live]:
        """The objects the caches hold that are controlled by the route ``uid``."""

    @property
    def lookup(self) -> Lookup:
        """Any object of a given kind and name, whoever controls it (cache, then API)."""

    def snapshot(self, uid: str) -> Snapshot | None:
        """The last apply's answer for the child ``uid``, if this process made it."""

    def apply(self, obj: Manifest) -> Live:
        """Server-side apply; the object as the API server now holds it."""

    def delete(self, obj: Live) -> None:
        """Delete exactly this object (its uid as precondition)."""


def route_document(body: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest part of a live object, as plain data (no status)."""
    return {
        key: plain(body[key]) for key in ("apiVersion", "kind", "metadata", "spec") if key in body
    }


def _on_change(old: Mapping[str, Any], new: Mapping[str, Any], events: list[Event]) -> list[Event]:
    """``events`` if the Ready condition's reason or message changed, else none: a problem
    is announced once, not on every resync."""
    before, after = condition(old, "Ready"), condition(new, "Ready")
    if (
        before
        and after
        and (before.get("reason"), before.get("message"))
        == (after.get("reason"), after.get("message"))
    ):
        return []
    return events[:MAX_EVENTS]


def reconcile(
    body: Mapping[str, Any], cluster: Cluster, settings: OperatorSettings, now: datetime
) -> Outcome:
    """Converge the children of the route in ``body`` and compute its status."""
    document = route_document(body)
    metadata = document["metadata"]
    namespace = metadata["namespace"]
    uid = str(metadata.get("uid") or "")
    generation = metadata.get("generation")
    old_status = plain(body.get("status") or {})

    def blocked(reason: str, message: str, events: list[Event], retry: bool = False) -> Outcome:
        status = blocked_status(reason, message, old_status, generation, now)
        return Outcome(status, _on_change(old_status, status, events), retry=retry)

    errors = validate(document, namespace, cluster.secret_keys)
    if errors:
        status = invalid_status(errors, old_status, generation, now)
        events = [Event("Warning", "InvalidSpec", str(error)) for error in errors]
        return Outcome(status, _on_change(old_status, status, events))

    route = parse_route(document)
    served = served_regions(route, settings)
    if not served:
        listed = ", ".join(region.name for region in route.spec.regions)
        mine = ", ".join(sorted(settings.regions or ()))
        message = f"this operator serves {mine}; the route lists {listed}"
        return blocked("NoServedRegion", message, [Event("Warning", "NoServedRegion", message)])

    desired = render(document, route, settings, namespace)
    children = list(cluster.children(uid))
    snapshots = {}
    for child in children:
        child_uid = str(child["metadata"].get("uid") or "")
        known = cluster.snapshot(child_uid)
        if known is not None:
            snapshots[child_uid] = known
    try:
        planned = plan(desired, children, cluster.lookup, uid, snapshots)
    except ApiError as exc:  # a name could not be checked (the API server refused the read)
        message = f"checking the children's names: {exc.message or exc}"
        return blocked(
            "ReconcileError", message, [Event("Warning", "ReconcileError", message)], retry=True
        )
    if planned.conflicts:
        message = "; ".join(str(conflict) for conflict in planned.conflicts)
        events = [Event("Warning", "NameConflict", str(c)) for c in planned.conflicts]
        return blocked("NameConflict", message, events, retry=True)  # until the name is free

    try:
        changes, objects = execute(planned, cluster.apply, cluster.delete)
    except WriteFailed as exc:
        message = f"{exc.what}: {exc.error.message or exc.error}"
        return blocked(
            "ReconcileError", message, [Event("Warning", "ReconcileError", message)], retry=True
        )

    by_key = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    regions = [
        RegionState.observe(region, by_key.get(("Deployment", child_name(route.name, region))))
        for region in served
    ]
    status = running_status(route, regions, bool(changes), old_status, generation, now)
    events = []
    if changes:
        summary = ", ".join(str(change) for change in changes)
        events.append(Event("Normal", "Applied", summary[:1024]))
    return Outcome(status, events, changes)
