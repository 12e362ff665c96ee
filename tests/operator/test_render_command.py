"""`modelroute render` as the CLI calls it: argv in, YAML or field-path errors out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelroute.operator.commands import operator_main, render_main
from tests.operator.conftest import EXAMPLES, minimal_route


def write(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "route.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_render_prints_the_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main([write(tmp_path, minimal_route())]) == 0
    objects = list(yaml.safe_load_all(capsys.readouterr().out))
    assert len(objects) == 11
    assert {obj["metadata"]["namespace"] for obj in objects} == {"ai"}


def test_render_namespace_flag_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main([write(tmp_path, minimal_route()), "--namespace", "prod"]) == 0
    objects = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {obj["metadata"]["namespace"] for obj in objects} == {"prod"}


def test_render_defaults_to_the_default_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    (local,) = [path for path in EXAMPLES if path.name == "local.yaml"]
    assert render_main([str(local)]) == 0
    objects = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {obj["metadata"]["namespace"] for obj in objects} == {"default"}


def test_render_invalid_spec_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = minimal_route()
    document["spec"]["regions"][0]["name"] = "Bad"
    document["spec"]["autoscaling"] = {"minReplicas": 0}
    assert render_main([write(tmp_path, document)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "spec.regions[0].name:" in captured.err
    assert "spec.autoscaling.minReplicas:" in captured.err


def test_render_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main([str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read file" in capsys.readouterr().err


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert render_main([]) == 2
    assert operator_main(["--resync", "0"]) == 2
    assert operator_main(["--bogus"]) == 2
