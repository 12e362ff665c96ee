"""Every CEL rule, evaluated as the API server would: after defaulting, nulls absent.

No API server runs here, so these tests are what stands between a broken
rule and a user's ``kubectl apply``. They check three things per rule: it
accepts valid routes, it rejects the mistake it exists for (and the spec model
rejects the same mistake, so the two never disagree), and it stays within what
Kubernetes accepts: only ``self`` (no ``oldSelf`` transition rules here),
known functions, and an estimated cost bounded by ``maxItems``/``maxLength``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

import cel
import pytest

from modelroute.operator.checks import validate
from modelroute.operator.crd import resource_schema
from modelroute.operator.crd_rules import RULES, Rule, schema_at
from tests.operator.conftest import minimal_route

SCHEMA = resource_schema()


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting, as the API server does before validation."""
    if isinstance(value, dict) and "properties" in schema:
        for key, child in schema["properties"].items():
            if key not in value and "default" in child:
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                value[key] = apply_defaults(child, value[key])
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key in value:
            value[key] = apply_defaults(schema["additionalProperties"], value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def without_nulls(value: Any) -> Any:
    """Kubernetes CEL treats null-valued fields as absent (has() is false)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def nodes_at(document: Any, path: str) -> Iterator[Any]:
    if not path:
        yield document
        return
    step, _, rest = path.partition(".")
    name, brackets = step.removesuffix("[]"), step.endswith("[]")
    if not isinstance(document, dict) or name not in document:
        return
    child = document[name]
    for item in child if brackets else [child]:
        yield from nodes_at(item, rest)


def failures(document: dict[str, Any]) -> list[str]:
    """Messages of every rule the document breaks."""
    prepared = without_nulls(apply_defaults(SCHEMA, copy.deepcopy(document)))
    broken = []
    for rule in RULES:
        for node in nodes_at(prepared, rule.path):
            if cel.evaluate(rule.rule, {"self": node}) is not True:
                broken.append(rule.message)
    return broken


def test_minimal_route_passes_every_rule() -> None:
    assert failures(minimal_route()) == []


def test_examples_pass_every_rule(example: dict[str, Any]) -> None:
    assert failures(example) == []


def test_every_rule_runs_against_the_minimal_route() -> None:
    prepared = without_nulls(apply_defaults(SCHEMA, minimal_route()))
    for rule in RULES:
        assert list(nodes_at(prepared, rule.path)), (
            f"{rule.path} not reached: the test would prove nothing"
        )


Mutation = Callable[[dict[str, Any]], None]


def _spec(document: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = document["spec"]
    return spec


CASES: list[tuple[str, Mutation, str]] = [
    (
        "name-with-digit-first",
        lambda d: d["metadata"].update(name="1chat"),
        "metadata.name must start",
    ),
    ("name-with-dot", lambda d: d["metadata"].update(name="chat.v2"), "metadata.name must start"),
    ("name-too-long", lambda d: d["metadata"].update(name="c" * 60), "must fit in 63"),
    (
        "unknown-endpoint-region",
        lambda d: _spec(d)["providers"][0]["endpoints"][0].update(region="ap-south-1"),
        "every endpoint's region",
    ),
    (
        "unknown-target-provider",
        lambda d: _spec(d)["models"][0]["targets"].append({"provider": "nope", "model": "m"}),
        "every target's provider",
    ),
    (
        "duplicate-region",
        lambda d: _spec(d)["regions"].append({"name": "us-east-1"}),
        "region names must be unique",
    ),
    (
        "duplicate-provider",
        lambda d: _spec(d)["providers"].append(copy.deepcopy(_spec(d)["providers"][0])),
        "provider names must be unique",
    ),
    (
        "duplicate-model",
        lambda d: _spec(d)["models"].append(copy.deepcopy(_spec(d)["models"][0])),
        "model names must be unique",
    ),
    (
        "target-twice",
        lambda d: _spec(d)["models"][0]["targets"].append(
            dict(_spec(d)["models"][0]["targets"][0])
        ),
        "only once in a fallback chain",
    ),
    (
        "secret-and-env",
        lambda d: _spec(d)["providers"][0]["endpoints"][0].update(apiKeyEnv="DEEPSEEK_API_KEY"),
        "not both",
    ),
    (
        "min-above-max",
        lambda d: _spec(d).update(autoscaling={"minReplicas": 5, "maxReplicas": 3}),
        "minReplicas",
    ),
    (
        "min-above-default-max",
        lambda d: _spec(d).update(autoscaling={"minReplicas": 11}),
        "minReplicas",
    ),
    (
        "stabilization-over-1h",
        lambda d: _spec(d).update(autoscaling={"scaleDownStabilization": "1h1s"}),
        "scaleDownStabilization",
    ),
    (
        "backoff-base-above-max",
        lambda d: _spec(d).update(resilience={"retries": {"backoff": {"base": "3s"}}}),
        "backoff.base",
    ),
    (
        "ejection-base-above-max",
        lambda d: _spec(d).update(resilience={"outlierDetection": {"baseEjectionTime": "10m"}}),
        "baseEjectionTime",
    ),
    (
        "targets-and-tiers",
        lambda d: _spec(d)["models"][0].update(tiers={"standard": _spec(d)["models"][0]["name"]}),
        "set exactly one of targets",
    ),
    (
        "neither-targets-nor-tiers",
        lambda d: _spec(d)["models"][0].update(targets=[]),
        "set exactly one of targets",
    ),
    (
        "first-token-above-total",
        lambda d: _spec(d).update(resilience={"timeouts": {"firstToken": "1m30s", "total": "1m"}}),
        "firstToken",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "message"), [(m, msg) for _, m, msg in CASES], ids=[c[0] for c in CASES]
)
def test_rule_rejects_its_mistake(mutate: Mutation, message: str) -> None:
    document = minimal_route()
    mutate(document)
    broken = failures(document)
    assert broken and all(message in text for text in broken), broken


@pytest.mark.parametrize(
    ("mutate", "message"), [(m, msg) for _, m, msg in CASES], ids=[c[0] for c in CASES]
)
def test_spec_model_rejects_what_the_rule_rejects(mutate: Mutation, message: str) -> None:
    document = minimal_route()
    mutate(document)
    assert validate(document, "ai", secret_keys=None), "CEL and the spec model disagree"


def test_every_rule_has_a_case() -> None:
    covered = {rule.message for rule in RULES if any(msg in rule.message for _, _, msg in CASES)}
    assert covered == {rule.message for rule in RULES}


def test_null_api_key_env_is_absent_not_set() -> None:
    document = minimal_route()
    document["spec"]["providers"][0]["endpoints"][0]["apiKeyEnv"] = None
    assert failures(document) == []


# --- the subset of CEL Kubernetes accepts --------------------------------------------

MACROS = ("all", "exists", "exists_one", "map", "filter")
FUNCTIONS = {"has", "size", "duration", "matches", "true", "false"}
COMPREHENSION = re.compile(
    r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(all|exists|exists_one|map|filter)\((\w+),"
)
PER_CALL_LIMIT = 1_000_000  # Kubernetes' per-expression estimated cost limit
STRING_COMPARE = 0.1  # cost per character of a string comparison


def _bound_variables(rule: Rule) -> dict[str, dict[str, Any]]:
    """Comprehension variable → the schema of the list items it ranges over."""
    scope: dict[str, dict[str, Any]] = {"self": schema_at(SCHEMA, rule.path)}
    for target, _, variable in COMPREHENSION.findall(rule.rule):
        root, *fields = target.split(".")
        node = scope[root]
        for name in fields:
            node = node["properties"][name]
        assert node.get("type") == "array", f"{rule.rule}: {target} is not a list"
        assert "maxItems" in node, f"{rule.rule}: {target} is unbounded (no maxItems)"
        scope[variable] = dict(node["items"], _max_items=node["maxItems"])
    return scope


def _literal_free(expression: str) -> str:
    return re.sub(r"'[^']*'", "''", expression)


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.path or 'root'}:{r.message[:30]}" for r in RULES])
def test_rule_uses_only_self_and_known_functions(rule: Rule) -> None:
    scope = _bound_variables(rule)
    assert "oldSelf" not in rule.rule
    names = re.findall(r"(?<![.\w])([A-Za-z_]\w*)", _literal_free(rule.rule))
    unknown = {
        name for name in names if name not in scope and name not in FUNCTIONS and name not in MACROS
    }
    assert not unknown, f"identifiers outside self and the macros' variables: {unknown}"
    cel.compile(rule.rule)


def _enclosing_cardinality(path: str) -> int:
    """How many times the rule runs: the product of maxItems of the lists above it."""
    total, node = 1, SCHEMA
    for step in path.split(".") if path else []:
        node = node["properties"][step.removesuffix("[]")]
        if step.endswith("[]"):
            total *= node["maxItems"]
            node = node["items"]
    return total


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.path or 'root'}:{r.message[:30]}" for r in RULES])
def test_rule_cost_is_bounded(rule: Rule) -> None:
    scope = _bound_variables(rule)
    iterations = 1
    for variable, items in scope.items():
        if variable != "self":
            iterations *= items["_max_items"]
    compared = re.findall(r"(\w+)\.(\w+)\s*==", rule.rule) + re.findall(
        r"==\s*(\w+)\.(\w+)", rule.rule
    )
    longest = 1
    for variable, name in compared:
        field = scope[variable]["properties"][name]
        assert "maxLength" in field, f"{variable}.{name} is compared but has no maxLength"
        longest = max(longest, field["maxLength"])
    cost = _enclosing_cardinality(rule.path) * iterations * (1 + longest * STRING_COMPARE) * 2
    assert cost <= PER_CALL_LIMIT, f"estimated cost {cost:.0f}"
