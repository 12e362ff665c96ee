"""Make the live children of a route equal the rendered ones: create, repair, prune.

Level-based: every call compares the whole desired set with what the API
server holds now, so a missed event, a deleted child or a hand edit is
repaired by the next call, whatever caused it.

A live object matches when every field we render has the same value there
(:func:`drifted`); fields the API server or other controllers add (defaults,
``clusterIP``, the HPA's ``replicas``) are left alone. A drifted child gets a
JSON merge patch of the whole rendered object, which replaces lists (containers,
ports, volumes) as a whole, so an edited entry cannot survive inside a list.

Writes are create-then-patch-on-409, not server-side apply: it works the same
on a real API server and on kmock's emulator, which does not emulate apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelroute.operator.kube import CHILD_KINDS, Conflict, Kind, Kube, kind_of
from modelroute.operator.render import ROUTE_LABEL, Manifest


@dataclass(frozen=True, slots=True)
class Change:
    """One write the reconciler made, for the Event users read."""

    verb: str  # created | patched | deleted
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.verb} {self.kind} {self.name}"


def drifted(desired: Any, live: Any) -> bool:
    """True if some rendered field is missing from ``live`` or differs there.

    Mappings compare key by key (extra live keys are fine); lists must have the
    same length and match item by item.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return True
        return any(key not in live or drifted(value, live[key]) for key, value in desired.items())
    if isinstance(desired, list | tuple):
        if not isinstance(live, list | tuple) or len(desired) != len(live):
            return True
        return any(drifted(d, v) for d, v in zip(desired, live, strict=True))
    return bool(desired != live)


def owned_by(obj: Mapping[str, Any], route: str, uid: str | None) -> bool:
    """Whether ``obj`` is one of this route's children (label, and owner uid when known)."""
    metadata = obj.get("metadata", {})
    if (metadata.get("labels") or {}).get(ROUTE_LABEL) != route:
        return False
    if uid is None:
        return True
    return any(ref.get("uid") == uid for ref in metadata.get("ownerReferences") or [])


@dataclass(frozen=True, slots=True)
class Converged:
    changes: list[Change]
    objects: dict[tuple[str, str], dict[str, Any]]
    """(kind, name) → the child as the API server holds it after this call."""


def converge(
    kube: Kube, desired: Sequence[Manifest], route: str, namespace: str, uid: str | None
) -> Converged:
    """Create missing children, patch drifted ones, delete ones no longer rendered."""
    live: dict[Kind, dict[str, dict[str, Any]]] = {}
    for kind in CHILD_KINDS:
        # The selector narrows the list on a real API server; owned_by() is the
        # actual rule (and all kmock does, as it ignores selectors).
        items = kube.list(kind, namespace, f"{ROUTE_LABEL}={route}")
        live[kind] = {
            item["metadata"]["name"]: item for item in items if owned_by(item, route, uid)
        }

    changes: list[Change] = []
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in desired:
        kind, name = kind_of(obj), obj["metadata"]["name"]
        current = live[kind].pop(name, None)
        if current is None:
            try:
                current = kube.create(obj)
                changes.append(Change("created", kind.kind, name))
            except Conflict:  # exists without our label or owner, or raced us: adopt it
                current = kube.patch(obj)
                changes.append(Change("patched", kind.kind, name))
        elif drifted(obj, current):
            current = kube.patch(obj)
            changes.append(Change("patched", kind.kind, name))
        objects[kind.kind, name] = current

    for kind, leftovers in live.items():
        for name in sorted(leftovers):
            kube.delete(kind, namespace, name)
            changes.append(Change("deleted", kind.kind, name))
    return Converged(changes, objects)
