"""The CRD: generated from the spec model, committed byte for byte, valid everywhere."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from modelroute.operator import crd
from modelroute.spec import RouteSpec, openapi_schema, parse_route
from tests.operator.conftest import minimal_route


def test_committed_crd_files_are_the_generated_output() -> None:
    expected = crd.render_yaml()
    for path in crd.CRD_FILES:
        assert path.read_text() == expected, (
            f"{path} is stale: run python -m modelroute.operator.crd --write"
        )


def test_main_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert crd.main([]) == 0
    assert capsys.readouterr().out == crd.render_yaml()


def test_main_rejects_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert crd.main(["--bogus"]) == 2
    assert "usage" in capsys.readouterr().err


def _strip(node: Any, keys: set[str]) -> Any:
    if isinstance(node, dict):
        return {key: _strip(value, keys) for key, value in node.items() if key not in keys}
    if isinstance(node, list):
        return [_strip(item, keys) for item in node]
    return node


def test_spec_schema_is_the_spec_models_plus_rules_only() -> None:
    root = crd.resource_schema()
    published = copy.deepcopy(root)
    spec = _strip(published["properties"]["spec"], {"x-kubernetes-validations"})
    spec.pop("description")
    assert spec == openapi_schema(RouteSpec)


def test_crd_names_scope_and_subresources() -> None:
    definition = crd.custom_resource_definition()
    assert definition["metadata"]["name"] == "modelroutes.modelroute.io"
    spec = definition["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["mr"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Ready",
        "Regions",
        "Models",
        "Reason",
        "Age",
    ]


def test_crd_passes_kubernetes_validate() -> None:
    kubernetes_validate.validate(crd.custom_resource_definition(), "1.33", strict=True)


def _walk(node: Any, path: str = "") -> Any:
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural() -> None:
    """Every node has a type (or is int-or-string); no node mixes properties and additionalProperties."""
    for path, node in _walk(crd.resource_schema()):
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path
        assert not ("properties" in node and "additionalProperties" in node), path


def _schema() -> dict[str, Any]:
    return crd.resource_schema()


def test_examples_validate_against_the_crd_schema_and_parse(example: dict[str, Any]) -> None:
    jsonschema.validate(example, _schema())
    route = parse_route(example)
    assert route.name == example["metadata"]["name"]


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["spec"].update(regions=[]), "regions"),
        (lambda d: d["spec"]["regions"][0].update(name="US_East"), "name"),
        (
            lambda d: (
                d["spec"]["autoscaling"].update(metric="cpu")
                if "autoscaling" in d["spec"]
                else d["spec"].update(autoscaling={"metric": "cpu"})
            ),
            "metric",
        ),
        (lambda d: d["spec"]["providers"][0]["endpoints"][0].update(baseURL="ftp://x"), "baseURL"),
        (lambda d: d["spec"].update(regions=[{"name": f"r{i}"} for i in range(17)]), "regions"),
    ],
)
def test_schema_rejects_field_level_mistakes(mutate: Any, where: str) -> None:
    document = minimal_route()
    mutate(document)
    with pytest.raises(jsonschema.ValidationError) as info:
        jsonschema.validate(document, _schema())
    assert (
        where in "/".join(str(p) for p in info.value.absolute_path) or where in info.value.message
    )


def test_crd_yaml_round_trips() -> None:
    text = crd.render_yaml()
    assert yaml.safe_load(text) == crd.custom_resource_definition()
