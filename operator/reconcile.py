"""One reconcile of one ModelRoute: validate, render, converge, observe.

Called for create, update, resume and every resync tick alike; nothing here
depends on *why* it runs. The order is what makes an invalid spec safe: every
check (parse, names, Secrets) runs before the first write, so a bad spec
changes no child and the routers keep serving the last good config.

The result is data, not side effects on kopf: the status to write and the
Events to post, so the handler layer stays a thin adapter.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelroute.operator.checks import validate
from modelroute.operator.converge import Change, converge
from modelroute.operator.kube import SECRET, Kube
from modelroute.operator.render import child_name, plain, render
from modelroute.operator.settings import OperatorSettings
from modelroute.operator.status import (
    RegionState,
    Status,
    condition,
    invalid_status,
    running_status,
)
from modelroute.spec import SpecError, parse_route

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


def route_document(body: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest part of a live object, as plain data (no status)."""
    return {
        key: plain(body[key]) for key in ("apiVersion", "kind", "metadata", "spec") if key in body
    }


def _secret_keys(kube: Kube, namespace: str, name: str) -> Collection[str] | None:
    secret = kube.get(SECRET, namespace, name)
    if secret is None:
        return None
    return set(secret.get("data") or {}) | set(secret.get("stringData") or {})


def _invalid_events(
    errors: list[SpecError], old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[Event]:
    """One Warning per problem, when the set of problems changed (not every resync)."""
    before, after = condition(old, "Ready"), condition(new, "Ready")
    if (
        before
        and after
        and (before.get("reason"), before.get("message"))
        == (after.get("reason"), after.get("message"))
    ):
        return []
    return [Event("Warning", "InvalidSpec", str(error)) for error in errors[:MAX_EVENTS]]


def reconcile(
    body: Mapping[str, Any], kube: Kube, settings: OperatorSettings, now: datetime
) -> Outcome:
    """Converge the children of the route in ``body`` and compute its status."""
    document = route_document(body)
    metadata = document["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    generation = metadata.get("generation")
    old_status = plain(body.get("status") or {})

    errors = validate(document, namespace, lambda secret: _secret_keys(kube, namespace, secret))
    if errors:
        status = invalid_status(errors, old_status, generation, now)
        return Outcome(status, _invalid_events(errors, old_status, status))

    route = parse_route(document)
    desired = render(document, route, settings, namespace)
    result = converge(kube, desired, name, namespace, metadata.get("uid"))
    regions = [
        RegionState.observe(
            region.name, result.objects.get(("Deployment", child_name(name, region.name)))
        )
        for region in route.spec.regions
    ]
    status = running_status(route, regions, bool(result.changes), old_status, generation, now)
    events = []
    if result.changes:
        summary = ", ".join(str(change) for change in result.changes)
        events.append(Event("Normal", "Applied", summary[:1024]))
    return Outcome(status, events, result.changes)
