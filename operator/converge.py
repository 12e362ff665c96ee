"""Make the live children of a route equal the rendered ones: decide, then apply and prune.

:func:`plan` decides, purely, from the rendered objects and what the caches
hold; :func:`execute` carries the plan out. The rules:

* **Names are owned.** A rendered name that exists but is controlled by
  something other than this route (another route whose ``<route>-<region>``
  spells the same, a user's own object, anything with no controller at all) is
  a :class:`NameConflict`, and a plan with conflicts writes nothing: the
  object is never taken over, and no half of the route is applied.
* **Writes are server-side applies** of the whole rendered object, so a field
  the render no longer has is removed by the API server (an annotation that
  turns node pinning off removes the ``nodeSelector``). Each applied object
  carries ``modelroute.io/applied``, a digest of what was applied.
* **Drift is what the operator set, changed.** An object is applied again when
  its digest differs from the rendered one (the spec, the operator's render or
  an annotation changed), or when a field it set was changed by someone else.
  The latter compares against what the API server *answered* to the last apply
  (a :class:`Snapshot`), so values the server normalises (``0.5`` CPU →
  ``500m``), fields it defaults, and fields it drops (a field an older server
  does not know) never look like drift. Without a snapshot (after a restart)
  the comparison is tolerant instead: quantities compare by value, and a
  rendered field missing from the live object is taken as dropped, not drift.
* **Children from before server-side apply** (written by the kopf-based
  operator with create and merge patch, field manager ``OpenAPI-Generator``)
  have their fields handed to the ``modelroute`` apply manager first
  (:func:`upgraded_managed_fields`, client-go's ``csaupgrade``): otherwise a
  field that operator set and this one no longer renders would stay forever,
  co-owned by a manager nobody runs.
* **Pruning** deletes this route's children (controlled by its uid) that are no
  longer rendered, each with its uid as a precondition, keeping each region's
  newest ConfigMaps that old ReplicaSets may still mount (rollbacks).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from modelroute.operator.kube import ApiError, Kind, kind_of
from modelroute.operator.render import REGION_LABEL, REVISION_HISTORY, Manifest

APPLIED_ANNOTATION = "modelroute.io/applied"
FIELD_MANAGER = "modelroute"
LEGACY_MANAGERS = frozenset({"OpenAPI-Generator"})
"""Field managers of the kopf-based operator's writes (the kubernetes client's User-Agent)."""

Live = dict[str, Any]
Lookup = Callable[[Kind, str], Live | None]
"""(kind, name) → the object of that name in the route's namespace, whoever owns it."""


@dataclass(frozen=True, slots=True)
class Change:
    """One write the reconciler made, for the Event users read."""

    verb: str  # created | applied | deleted
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.verb} {self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class NameConflict:
    kind: str
    name: str
    holder: str

    def __str__(self) -> str:
        return f'{self.kind} "{self.name}" already exists and is {self.holder}: not taken over'


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The API server's answer to our last apply, on the fields we set."""

    digest: str
    projection: Any


@dataclass(frozen=True, slots=True)
class Plan:
    conflicts: list[NameConflict] = field(default_factory=list)
    apply: list[tuple[Manifest, str]] = field(default_factory=list)
    """(object to apply, why: missing | changed | edited)."""
    unchanged: list[Live] = field(default_factory=list)
    delete: list[Live] = field(default_factory=list)


class WriteFailed(Exception):
    """A write the plan needed was refused; ``error`` keeps the API server's words."""

    def __init__(self, what: str, error: ApiError) -> None:
        self.what = what
        self.error = error
        super().__init__(f"{what}: {error}")


# -- digests and comparison -----------------------------------------------------------------


def digest(obj: Mapping[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_digest(obj: Manifest) -> Manifest:
    """``obj`` carrying the digest of itself in ``modelroute.io/applied``."""
    result = copy.deepcopy(obj)
    metadata = result.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    annotations[APPLIED_ANNOTATION] = digest(obj)
    return result


def applied_digest(live: Mapping[str, Any]) -> str | None:
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(APPLIED_ANNOTATION)
    return str(value) if value is not None else None


def project(desired: Any, live: Any) -> Any:
    """``live``'s values at the paths ``desired`` sets; paths missing from ``live`` left out."""
    if isinstance(desired, Mapping) and isinstance(live, Mapping):
        return {key: project(value, live[key]) for key, value in desired.items() if key in live}
    if isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        return [project(d, v) for d, v in zip(desired, live, strict=True)]
    return live


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(e[+-]?\d+|E[+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")
_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{f"{p}i": Decimal(1024) ** (i + 1) for i, p in enumerate("KMGTPE")},
}


def quantity_value(value: Any) -> Decimal | None:
    """A Kubernetes quantity's value (``"1Gi"``, ``"500m"``, ``0.5``), or None if it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError):
        return None


def _is_quantity(path: tuple[str, ...]) -> bool:
    """Fields the API server stores as a canonical quantity, in the kinds we render."""
    return (
        path[-2:-1] in (("requests",), ("limits",))
        or path[-1:] in (("sizeLimit",), ("averageValue",))
        or path[-2:] == ("target", "value")
    )


def equivalent(desired: Any, live: Any, path: tuple[str, ...] = ()) -> bool:
    """Whether ``live`` still holds what ``desired`` sets, as far as can be told without a
    snapshot: quantities compare by value, a rendered key missing from ``live`` counts as
    dropped by the server, lists must match item by item."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(
            key not in live or equivalent(value, live[key], (*path, str(key)))
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(equivalent(d, v, path) for d, v in zip(desired, live, strict=True))
    if desired == live:
        return True
    if _is_quantity(path):
        a, b = quantity_value(desired), quantity_value(live)
        return a is not None and a == b
    return False


def needs_apply(desired: Manifest, live: Live | None, snapshot: Snapshot | None) -> str | None:
    """Why ``desired`` (carrying its digest) must be applied over ``live``, or None."""
    if live is None:
        return "missing"
    wanted = applied_digest(desired)
    if applied_digest(live) != wanted:
        return "changed"
    if snapshot is not None and snapshot.digest == wanted:
        return None if project(desired, live) == snapshot.projection else "edited"
    return None if equivalent(desired, live) else "edited"


# -- ownership ------------------------------------------------------------------------------


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controlled_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    ref = controller_of(obj)
    return ref is not None and uid is not None and ref.get("uid") == uid


def holder(obj: Mapping[str, Any]) -> str:
    ref = controller_of(obj)
    if ref is None:
        return "not controlled by any ModelRoute"
    return f'controlled by {ref.get("kind", "?")} "{ref.get("name", "?")}"'


# -- the plan -------------------------------------------------------------------------------


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return str(obj["kind"]), str(obj["metadata"]["name"])


def _created(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def _history(leftover: Iterable[Live], desired: Sequence[Manifest]) -> set[tuple[str, str]]:
    """ConfigMaps kept for rollbacks: per region, the newest REVISION_HISTORY not rendered."""
    rendered = {_key(obj) for obj in desired}
    by_region: dict[str, list[Live]] = {}
    for obj in leftover:
        region = ((obj.get("metadata") or {}).get("labels") or {}).get(REGION_LABEL)
        if obj["kind"] == "ConfigMap" and region and _key(obj) not in rendered:
            by_region.setdefault(region, []).append(obj)
    kept: set[tuple[str, str]] = set()
    regions = {
        ((obj.get("metadata") or {}).get("labels") or {}).get(REGION_LABEL) for obj in desired
    }
    for region, objs in by_region.items():
        if region not in regions:
            continue  # the region is gone: so are its routers, and every config they had
        newest = sorted(objs, key=lambda o: (_created(o), _key(o)), reverse=True)
        kept |= {_key(obj) for obj in newest[:REVISION_HISTORY]}
    return kept


def plan(
    desired: Sequence[Manifest],
    owned: Iterable[Live],
    lookup: Lookup,
    uid: str | None,
    snapshots: Mapping[str, Snapshot],
) -> Plan:
    """What to apply and delete so that the route's children are ``desired``.

    ``owned`` are the children the caches hold for the route (controlled by
    ``uid``); ``lookup`` finds any other object of a rendered name (a cache, then the
    API), so that a name held by someone else is found before anything is written.
    """
    mine = {_key(obj): obj for obj in owned if controlled_by(obj, uid)}
    result = Plan()
    for obj in desired:
        kind, name = _key(obj)
        live = mine.pop((kind, name), None)
        if live is None:
            live = lookup(kind_of(obj), name)
            if live is not None and not controlled_by(live, uid):
                result.conflicts.append(NameConflict(kind, name, holder(live)))
                continue
        wanted = with_digest(obj)
        live_uid = str((live or {}).get("metadata", {}).get("uid") or "")
        reason = needs_apply(wanted, live, snapshots.get(live_uid))
        if reason is None:
            assert live is not None
            result.unchanged.append(live)
        else:
            result.apply.append((wanted, reason))
    if result.conflicts:
        return Plan(conflicts=result.conflicts)
    kept = _history(mine.values(), desired)
    result.delete.extend(obj for key, obj in sorted(mine.items()) if key not in kept)
    return result


Apply = Callable[[Manifest], Live]
Delete = Callable[[Live], None]


def execute(planned: Plan, apply: Apply, delete: Delete) -> tuple[list[Change], list[Live]]:
    """Carry out ``planned``: the writes made, and every rendered child as it is now.

    The first refused write stops the rest and raises :class:`WriteFailed`; what was
    written before it stays (the next attempt starts from there).
    """
    assert not planned.conflicts, "a plan with conflicts writes nothing"
    changes: list[Change] = []
    objects = list(planned.unchanged)
    for obj, reason in planned.apply:
        kind, name = _key(obj)
        try:
            objects.append(apply(obj))
        except ApiError as exc:
            raise WriteFailed(f"applying {kind} {name}", exc) from exc
        changes.append(Change("created" if reason == "missing" else "applied", kind, name))
    for obj in planned.delete:
        kind, name = _key(obj)
        try:
            delete(obj)
        except ApiError as exc:
            raise WriteFailed(f"deleting {kind} {name}", exc) from exc
        changes.append(Change("deleted", kind, name))
    return changes, objects


def _union(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(a)
    for key, value in b.items():
        mine = result.get(key)
        result[key] = (
            _union(mine, value)
            if isinstance(mine, Mapping) and isinstance(value, Mapping)
            else value
        )
    return result


def upgraded_managed_fields(live: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """``live``'s managedFields with the legacy managers' fields given to ``modelroute``'s
    apply entry, or None if there is nothing to hand over."""
    entries = list((live.get("metadata") or {}).get("managedFields") or [])
    legacy = [
        e
        for e in entries
        if e.get("manager") in LEGACY_MANAGERS
        and e.get("operation") == "Update"
        and not e.get("subresource")
    ]
    if not legacy:
        return None
    ours = [
        e for e in entries if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"
    ]
    fields: dict[str, Any] = {}
    for entry in ours + legacy:
        fields = _union(fields, entry.get("fieldsV1") or {})
    template = (ours or legacy)[0]
    merged = {
        "manager": FIELD_MANAGER,
        "operation": "Apply",
        "apiVersion": template.get("apiVersion"),
        "time": template.get("time"),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    kept = [e for e in entries if not any(e is x for x in ours + legacy)]
    return [*kept, {key: value for key, value in merged.items() if value is not None}]


def snapshot_of(applied: Manifest, answer: Mapping[str, Any]) -> Snapshot:
    """What to remember of an apply: the server's answer on the fields we set."""
    return Snapshot(applied_digest(applied) or "", project(applied, answer))
