"""From the model a client named to the chain that serves this request.

Most models are a chain and resolve to themselves. A tiered model
(``models[].tiers``) picks one of its tiers per request, in this order:

1. the ``x-modelroute-tier`` request header, when the client knows best;
2. the model's rules (``tiers.rules``: system prompt contains X ⇒ tier,
   case-insensitive), the first that matches;
3. the classifier (:mod:`.tiers`), pure and sub-millisecond.

A tier the model does not declare falls to ``standard``. With
``tiers.degrade`` (the default), the cheaper tiers below the chosen one are
kept in order: when the chosen tier cannot answer, the request falls to them
and the answer says so in ``x-modelroute-degraded``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelroute.router.errors import BadRequest
from modelroute.router.table import TIER_ORDER, Route
from modelroute.router.tiers import classify, rule_tier

TIER_HEADER = b"x-modelroute-tier"


@dataclass(slots=True)
class Resolution:
    route: Route  # the chain to route to
    tier: str | None = None  # None: not a tiered model
    why: str = ""  # header, rule, or the classifier's reason
    lower: list[tuple[str, Route]] = field(default_factory=list)  # degradation, next first


def resolve(
    route: Route,
    payload: dict[str, Any],
    headers: dict[bytes, bytes],
    floor: str | None = None,
) -> Resolution:
    """The chain for this request; ``floor`` is the tier its session reached before
    (a conversation's tier may go up, never down, unless the header says so)."""
    tiers = route.tiers
    if tiers is None:
        return Resolution(route)
    forced = headers.get(TIER_HEADER)
    if forced is not None:
        wanted = forced.decode("latin-1").strip().lower()
        if wanted not in TIER_ORDER:
            raise BadRequest(
                f"x-modelroute-tier must be one of {', '.join(TIER_ORDER)}; got {wanted!r}.",
                param="x-modelroute-tier",
            )
        tier, why = wanted, "header"
    else:
        ruled = rule_tier(payload, tiers.rules) if tiers.rules else None
        if ruled is not None:
            tier, why = ruled, "rule"
        else:
            decision = classify(payload)
            tier, why = decision.tier, decision.reason
        if floor is not None and TIER_ORDER.index(floor) > TIER_ORDER.index(tier):
            tier, why = floor, "session"
    tier = tier if tier in tiers.routes else "standard"
    position = tiers.order.index(tier)
    lower = (
        [(t, tiers.routes[t]) for t in reversed(tiers.order[:position])] if tiers.degrade else []
    )
    tiers.decisions[tier].inc()
    return Resolution(tiers.routes[tier], tier, why, lower)
