"""What the operator reports in ``status``: pure functions of what it observed.

Three conditions, per Kubernetes API conventions (KEP-1623):

* ``Ready``: every region this operator serves has at least one ready router
  (``AllRegionsReady``), or not (``RegionsNotReady``); or the operator could
  not apply the route: ``InvalidSpec`` (the spec or a Secret it names),
  ``NameConflict`` (a child's name is held by another object, which is never
  taken over), ``ReconcileError`` (the API server refused a write: the message
  is its own, and the write is retried with backoff) or ``NoServedRegion``
  (this operator serves none of the route's regions);
* ``Progressing``: routers are being created or rolled to a new spec
  (``RollingOut``) or not (``RolloutComplete``, or the blocking reason);
* ``Degraded``: something is wrong that waiting will not fix: routers that
  are not ready outside a rollout (``RoutersUnavailable``) or a route the
  operator cannot apply while the old routers keep serving (the blocking
  reason); otherwise ``AsExpected``.

Regions: ``status.regions`` and ``readyRegions`` count the regions this
operator serves (all of them in a stretched cluster; its own with one cluster
per region, where each cluster's copy of the route reports its own region).

``lastTransitionTime`` changes only when a condition's status flips, so it
answers "since when is this route not ready?".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelroute.spec import ModelRoute, SpecError

Status = dict[str, Any]
MAX_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class RegionState:
    """One region's router Deployment as last observed."""

    name: str
    replicas: int
    ready: int
    rolling_out: bool

    @classmethod
    def observe(cls, name: str, deployment: Mapping[str, Any] | None) -> RegionState:
        if deployment is None:
            return cls(name, 0, 0, True)
        status = deployment.get("status") or {}
        replicas = int(status.get("replicas") or 0)
        desired = int((deployment.get("spec") or {}).get("replicas") or replicas)
        updated = int(status.get("updatedReplicas") or 0)
        observed = status.get("observedGeneration")
        generation = (deployment.get("metadata") or {}).get("generation")
        rolling_out = (
            observed is None
            or (generation is not None and int(observed) < int(generation))
            or updated < desired
            or replicas > updated
        )
        return cls(name, replicas, int(status.get("readyReplicas") or 0), rolling_out)


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    old: Iterable[Mapping[str, Any]],
    new: Sequence[Condition],
    generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """``new`` as status entries, keeping ``lastTransitionTime`` where the status did not flip."""
    previous = {str(entry.get("type")): entry for entry in old}
    result = []
    for condition in new:
        status = "True" if condition.status else "False"
        before = previous.get(condition.type)
        since = (
            str(before["lastTransitionTime"])
            if before and before.get("status") == status and before.get("lastTransitionTime")
            else timestamp(now)
        )
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": status,
            "reason": condition.reason,
            "message": condition.message[:MAX_MESSAGE],
            "lastTransitionTime": since,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        result.append(entry)
    return result


def _names(regions: Iterable[RegionState]) -> str:
    return ", ".join(region.name for region in regions)


def running_conditions(
    regions: Sequence[RegionState], changed: bool, elsewhere: Sequence[str] = ()
) -> list[Condition]:
    """Conditions of a valid, applied route from its regions' Deployments; ``elsewhere``
    are the route's regions another cluster's operator serves."""
    not_ready = [r for r in regions if r.ready < 1]
    rolling = [r for r in regions if r.rolling_out]
    stuck = [r for r in regions if not r.rolling_out and r.ready < max(r.replicas, 1)]
    if not_ready:
        ready = Condition(
            "Ready", False, "RegionsNotReady", f"no ready router in: {_names(not_ready)}"
        )
    else:
        served = f"all {len(regions)} regions" if not elsewhere else _names(regions)
        others = f" (served by other clusters: {', '.join(elsewhere)})" if elsewhere else ""
        ready = Condition("Ready", True, "AllRegionsReady", f"routers ready in {served}{others}")
    if rolling or changed:
        regions_text = _names(rolling) if rolling else "all regions"
        progressing = Condition(
            "Progressing", True, "RollingOut", f"updating routers in: {regions_text}"
        )
    else:
        progressing = Condition(
            "Progressing", False, "RolloutComplete", "every region runs the current spec"
        )
    if stuck:
        details = ", ".join(f"{r.name} ({r.ready}/{max(r.replicas, 1)} ready)" for r in stuck)
        degraded = Condition(
            "Degraded",
            True,
            "RoutersUnavailable",
            f"routers not ready outside a rollout: {details}",
        )
    else:
        degraded = Condition("Degraded", False, "AsExpected", "no problem observed")
    return [ready, progressing, degraded]


BLOCKED = {
    "InvalidSpec": (
        "nothing applied until the spec is fixed",
        "existing routers, if any, keep running the last valid spec",
    ),
    "NameConflict": (
        "nothing applied until the name is free",
        "existing routers, if any, keep running the last applied spec",
    ),
    "ReconcileError": (
        "retrying with backoff",
        "the API server refused a write; routers run what was applied before it",
    ),
    "NoServedRegion": (
        "this operator runs no router of this route",
        "no router of this route runs in this cluster",
    ),
}
"""Reasons a route cannot be applied, with the Progressing and Degraded messages."""


def blocked_conditions(reason: str, message: str) -> list[Condition]:
    progressing, degraded = BLOCKED[reason]
    return [
        Condition("Ready", False, reason, message),
        Condition("Progressing", False, reason, progressing),
        Condition("Degraded", True, reason, degraded),
    ]


def invalid_conditions(errors: Sequence[SpecError]) -> list[Condition]:
    return blocked_conditions("InvalidSpec", "; ".join(str(error) for error in errors))


def running_status(
    route: ModelRoute,
    regions: Sequence[RegionState],
    changed: bool,
    old: Mapping[str, Any],
    generation: int | None,
    now: datetime,
) -> Status:
    """The full ``status`` of a route whose children were just converged; ``regions``
    are the ones this operator serves."""
    served = {region.name for region in regions}
    elsewhere = [region.name for region in route.spec.regions if region.name not in served]
    ready = sum(1 for region in regions if region.ready >= 1)
    status: Status = {
        "readyRegions": f"{ready}/{len(regions)}",
        "models": ",".join(model.name for model in route.spec.models),
        "regions": [
            {"name": r.name, "replicas": r.replicas, "readyReplicas": r.ready} for r in regions
        ],
        "conditions": merge_conditions(
            old.get("conditions") or [],
            running_conditions(regions, changed, elsewhere),
            generation,
            now,
        ),
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def blocked_status(
    reason: str, message: str, old: Mapping[str, Any], generation: int | None, now: datetime
) -> Status:
    """Status for a route that cannot be applied; region counts stay as last observed."""
    status: Status = {
        "conditions": merge_conditions(
            old.get("conditions") or [], blocked_conditions(reason, message), generation, now
        )
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def invalid_status(
    errors: Sequence[SpecError], old: Mapping[str, Any], generation: int | None, now: datetime
) -> Status:
    return blocked_status(
        "InvalidSpec", "; ".join(str(error) for error in errors), old, generation, now
    )


def condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for entry in status.get("conditions") or []:
        if entry.get("type") == type_:
            return dict(entry)
    return None
