"""Checks the operator adds to the spec model's: names, HPA limits, Secrets."""

from __future__ import annotations

from typing import Any

from modelroute.operator.checks import check_secrets, validate
from modelroute.spec import parse_route
from tests.operator.conftest import minimal_route


def test_valid_route_has_no_problems(route: dict[str, Any]) -> None:
    assert validate(route, "ai", secret_keys=lambda name: {"apiKey"}) == []


def test_parse_errors_come_first_with_paths(route: dict[str, Any]) -> None:
    route["spec"]["regions"][0]["name"] = "Bad Region"
    errors = validate(route, "ai", secret_keys=None)
    assert [e.path for e in errors] == ["spec.regions[0].name"]


def test_route_name_must_work_as_a_service_name(route: dict[str, Any]) -> None:
    route["metadata"]["name"] = "9chat"
    assert [e.path for e in validate(route, "ai", None)] == ["metadata.name"]


def test_child_names_must_fit(route: dict[str, Any]) -> None:
    route["metadata"]["name"] = "c" * 55
    errors = validate(route, "ai", None)
    assert [e.path for e in errors] == ["spec.regions[0].name", "spec.regions[1].name"]


def test_stabilization_over_an_hour(route: dict[str, Any]) -> None:
    route["spec"]["autoscaling"] = {"scaleDownStabilization": "2h"}
    assert [e.path for e in validate(route, "ai", None)] == [
        "spec.autoscaling.scaleDownStabilization"
    ]


def test_missing_secret_and_missing_key_are_located() -> None:
    document = minimal_route()
    document["spec"]["auth"] = {"keysSecretRef": {"name": "clients", "key": "keys"}}
    secrets = {"ds-us-east-1": {"apiKey"}, "clients": {"other"}}
    errors = check_secrets(parse_route(document), "ai", secrets.get)
    assert [str(e) for e in errors] == [
        'spec.providers[0].endpoints[1].apiKeySecretRef.name: Secret "ds-eu-west-1" not found in namespace "ai"',
        'spec.auth.keysSecretRef.key: Secret "clients" has no key "keys"',
    ]


def test_each_secret_is_looked_up_once() -> None:
    document = minimal_route()
    for endpoint in document["spec"]["providers"][0]["endpoints"]:
        endpoint["apiKeySecretRef"]["name"] = "shared"
    calls: list[str] = []

    def lookup(name: str) -> set[str]:
        calls.append(name)
        return {"apiKey"}

    assert check_secrets(parse_route(document), "ai", lookup) == []
    assert calls == ["shared"]
