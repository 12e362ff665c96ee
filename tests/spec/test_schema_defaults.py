"""The API server's defaulting (from the published schema) and the parser's agree.

A route applied with kubectl is defaulted by the API server from the CRD's
schema; the same file run locally is defaulted by parse_route. If the two
disagreed, a route would behave differently in and out of a cluster.
"""

from __future__ import annotations

import copy

import yaml

from modelroute.spec import RouteSpec, openapi_schema, parse_route
from tests.operator.conftest import minimal_route
from tests.operator.test_crd_rules import apply_defaults


def test_schema_defaults_parse_to_the_same_spec_as_parser_defaults() -> None:
    document = minimal_route()
    defaulted = copy.deepcopy(document)
    defaulted["spec"] = apply_defaults(openapi_schema(RouteSpec), defaulted["spec"])
    assert defaulted["spec"] != document["spec"], "defaults were applied"
    assert parse_route(defaulted).spec == parse_route(document).spec


def test_every_schema_default_parses() -> None:
    """A default the parser rejected would break every route that omits the field."""
    document = minimal_route()
    document["spec"]["auth"] = {"keysSecretRef": {"name": "k", "key": "k"}}
    document["spec"] = apply_defaults(openapi_schema(RouteSpec), document["spec"])
    parse_route(document)


def test_retry_on_can_be_written_unquoted() -> None:
    # The field is retryOn, not on (YAML 1.1 reads an unquoted `on:` key as true),
    # and an unquoted 429 is a number that still means the 429 condition.
    document = minimal_route()
    text = yaml.safe_dump(document)
    text = text.replace(
        "spec:\n", "spec:\n  resilience:\n    retries:\n      retryOn: [5xx, 429]\n", 1
    )
    route = parse_route(yaml.safe_load(text))
    assert route.spec.resilience.retries.retry_on == ("5xx", "429")
