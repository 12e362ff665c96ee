"""Cross-field rules the API server enforces, as CEL ``x-kubernetes-validations``.

:func:`modelroute.spec.validate.check_references` is what the router and the
operator rely on; the rules here repeat the part of it CEL can express so that
``kubectl apply`` rejects a broken ModelRoute at once, with a message, instead
of the operator reporting ``InvalidSpec`` later. Tests evaluate every rule
against valid and invalid routes (``tests/operator/test_crd_rules.py``).

Kubernetes refuses a CRD whose rules have an unbounded *estimated* cost, and
it estimates from ``maxItems``/``maxLength``: the spec model declares those
bounds on every list and name the rules walk (``spec_field(max_items=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelroute.spec.validate import CHILD_NAME_MAX, DNS_1035


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``x-kubernetes-validations`` entry, placed at ``path`` in the schema.

    ``path`` is dotted from the resource root; ``[]`` steps into list items
    (``spec.providers[].endpoints[]``).
    """

    path: str
    rule: str
    message: str
    field_path: str | None = None

    def as_schema(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        return entry


def _unique(path: str, what: str) -> Rule:
    return Rule(
        path, "self.all(a, self.exists_one(b, b.name == a.name))", f"{what} names must be unique"
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "",
        f"self.metadata.name.matches('{DNS_1035}')",
        "metadata.name must start with a letter and hold only lowercase letters, digits "
        "and '-': it names the route's Services",
    ),
    Rule(
        "",
        f"self.spec.regions.all(r, size(self.metadata.name) + 1 + size(r.name) <= {CHILD_NAME_MAX})",
        f"metadata.name plus '-' plus each region name must fit in {CHILD_NAME_MAX} characters: "
        "per-region objects are named <route>-<region>",
    ),
    Rule(
        "spec",
        "self.providers.all(p, p.endpoints.all(e, self.regions.exists(r, r.name == e.region)))",
        "every endpoint's region must be listed in spec.regions",
        ".providers",
    ),
    Rule(
        "spec",
        "self.models.all(m, m.targets.all(t, self.providers.exists(p, p.name == t.provider)))",
        "every target's provider must be listed in spec.providers",
        ".models",
    ),
    Rule(
        "spec.models[]",
        "has(self.tiers) != (size(self.targets) > 0)",
        "set exactly one of targets (a fallback chain) or tiers",
    ),
    _unique("spec.regions", "region"),
    _unique("spec.providers", "provider"),
    _unique("spec.models", "model"),
    Rule(
        "spec.models[].targets",
        "self.all(a, self.exists_one(b, b.provider == a.provider && b.model == a.model))",
        "a target may appear only once in a fallback chain",
    ),
    Rule(
        "spec.providers[].endpoints[]",
        "!(has(self.apiKeySecretRef) && has(self.apiKeyEnv))",
        "set apiKeySecretRef or apiKeyEnv, not both",
    ),
    Rule(
        "spec.autoscaling",
        "self.minReplicas <= self.maxReplicas",
        "minReplicas must not exceed maxReplicas",
        ".minReplicas",
    ),
    Rule(
        "spec.autoscaling",
        "duration(self.scaleDownStabilization) <= duration('1h')",
        "scaleDownStabilization must not exceed 1h (the HorizontalPodAutoscaler's limit)",
        ".scaleDownStabilization",
    ),
    Rule(
        "spec.resilience.retries.backoff",
        "duration(self.base) <= duration(self.max)",
        "backoff.base must not exceed backoff.max",
        ".base",
    ),
    Rule(
        "spec.resilience.outlierDetection",
        "duration(self.baseEjectionTime) <= duration(self.maxEjectionTime)",
        "baseEjectionTime must not exceed maxEjectionTime",
        ".baseEjectionTime",
    ),
    Rule(
        "spec.resilience.timeouts",
        "duration(self.firstToken) <= duration(self.total)",
        "firstToken must not exceed total",
        ".firstToken",
    ),
)


# Schema bounds the CEL cost estimator needs (see the module docstring).
def schema_at(root: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema node at a dotted ``path`` (``[]`` steps into list items)."""
    node = root
    if not path:
        return node
    for step in path.split("."):
        name, brackets = step.removesuffix("[]"), step.endswith("[]")
        node = node["properties"][name]
        if brackets:
            node = node["items"]
    return node
