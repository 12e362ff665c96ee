"""values.schema.json: strict, documented, and what helm says about a bad values file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from .chart import ALL_ON, CHART, NAMESPACE, RELEASE, Helm, HelmFailed, Manifest

SCHEMA: Manifest = json.loads((CHART / "values.schema.json").read_text())
VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES: Manifest = yaml.safe_load(VALUES_TEXT)

# Kubernetes' own types, passed through to the pod: their fields are documented upstream.
KUBERNETES_TYPES = {"podSecurityContext", "securityContext", "affinity"}

# (values, where helm must point, what it must say)
BAD_VALUES: list[tuple[Manifest, str, str]] = [
    ({"resync": "60"}, "at '/resync'", "got string, want null or number"),
    ({"resync": 0}, "at '/resync'", "exclusiveMinimum"),
    ({"verbose": "yes"}, "at '/verbose'", "got string, want boolean"),
    ({"replica": 2}, "at ''", "additional properties 'replica' not allowed"),
    ({"replicas": 0}, "at '/replicas'", "minimum"),
    ({"regions": ["US East"]}, "at '/regions/0'", "does not match pattern"),
    (
        {"serviceMonitor": {"enabled": True, "intervall": "15s"}},
        "at '/serviceMonitor'",
        "additional properties 'intervall' not allowed",
    ),
    ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'", "value must be one of"),
    (
        {"podSecurityContext": {"seccompProfile": {"type": "Custom"}}},
        "at '/podSecurityContext/seccompProfile/type'",
        "value must be one of",
    ),
    ({"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0'", "does not match pattern"),
    (
        {"serviceMonitor": {"interval": "1.5s"}},
        "at '/serviceMonitor/interval'",
        "does not match pattern",
    ),
    (
        {"resources": {"requests": {"cpu": "lots"}}},
        "at '/resources/requests/cpu'",
        "does not match pattern",
    ),
    (
        {"tolerations": [{"operator": "Maybe"}]},
        "at '/tolerations/0/operator'",
        "value must be one of",
    ),
    (
        {"networkPolicy": {"egress": {"upstreams": [{"cidr": "everywhere", "ports": [443]}]}}},
        "at '/networkPolicy/egress/upstreams/0/cidr'",
        "does not match pattern",
    ),
    (
        {"networkPolicy": {"egress": {"upstreams": [{"cidr": "0.0.0.0/0", "ports": []}]}}},
        "at '/networkPolicy/egress/upstreams/0/ports'",
        "minItems",
    ),
    (
        {"networkPolicy": {"ingress": {"namespaces": ["Team A"]}}},
        "at '/networkPolicy/ingress/namespaces/0'",
        "does not match pattern",
    ),
]


def object_schemas(schema: Manifest, path: str = "") -> Iterator[tuple[str, Manifest]]:
    if "properties" in schema:
        yield path or "/", schema
        for name, sub in schema["properties"].items():
            yield from object_schemas(sub, f"{path}/{name}")


def test_schema_is_draft_07_and_accepts_the_shipped_values() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)
    jsonschema.Draft7Validator(SCHEMA).validate(ALL_ON)


def test_schema_is_strict_and_describes_the_charts_own_values() -> None:
    for path, schema in object_schemas(SCHEMA):
        assert schema.get("additionalProperties") is False, f"{path}: unknown keys allowed"
        if path == "/" or (path.count("/") == 1 and path[1:] not in KUBERNETES_TYPES):
            for name, sub in schema["properties"].items():
                assert sub.get("description"), f"{path}/{name}: no description"


def test_schema_knows_every_value_and_values_yaml_comments_each_one() -> None:
    assert set(VALUES) <= set(SCHEMA["properties"])
    lines = VALUES_TEXT.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^([A-Za-z]\w*):", line)
        if match and match.group(1) not in ("tolerations", "affinity"):  # share nodeSelector's
            assert lines[index - 1].startswith("#"), f"values.yaml: {match.group(1)} has no comment"
    for section in (
        "image",
        "routerImage",
        "serviceAccount",
        "rbac",
        "grafanaDashboard",
        "prometheusAdapterRules",
        "serviceMonitor",
        "prometheusRule",
        "networkPolicy",
    ):
        block = re.search(rf"^{section}:\n((?:  .*\n|\n)*)", VALUES_TEXT, re.MULTILINE)
        assert block, section
        sub_lines = block.group(1).splitlines()
        for index, line in enumerate(sub_lines):
            if re.match(r"^  \w+:", line) and not line.startswith("  enabled:"):
                assert sub_lines[index - 1].lstrip().startswith("#"), (
                    f"{section}.{line.strip()}: no comment"
                )


@pytest.mark.parametrize(("values", "where", "message"), BAD_VALUES, ids=lambda v: str(v)[:60])
def test_bad_values_are_rejected_naming_the_field(
    helm: Helm, values: dict[str, Any], where: str, message: str
) -> None:
    path = str(helm.values_file(values))
    chart = str(CHART)
    commands = [
        ("lint", "--strict", chart, "-f", path),
        ("template", RELEASE, chart, "-f", path),
        ("install", RELEASE, chart, "-n", NAMESPACE, "--dry-run=client", "-f", path),
    ]
    for command in commands:
        with pytest.raises(HelmFailed) as failure:
            helm.run(*command)
        assert where in str(failure.value) and message in str(failure.value), failure.value
    assert list(jsonschema.Draft7Validator(SCHEMA).iter_errors(values)), (
        "the schema alone rejects it"
    )
