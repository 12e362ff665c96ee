"""The ``modelroute`` command: validate and router start-up, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelroute.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "manifests" / "examples"


def write(tmp_path: Path, doc: object, name: str = "route.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def run_router(config: Path) -> subprocess.CompletedProcess[str]:
    """``modelroute router`` as a user starts it; a bad config must end it at once."""
    return subprocess.run(
        [sys.executable, "-m", "modelroute.cli", "router", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def broken_route() -> dict[str, Any]:
    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "chat"},
        "spec": {
            "regions": [{"name": "us-east-1"}],
            "providers": [
                {
                    "name": "deepseek",
                    "endpoints": [{"region": "us-east-1", "baseURL": "https://x/v1"}],
                }
            ],
            "models": [
                {"name": "chat-fast", "targets": [{"provider": "deepseek", "model": "v4"}]},
                {"name": "chat-pro", "targets": [{"provider": "glm", "model": "GLM-4-Plus"}]},
            ],
        },
    }


def test_validate_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    paths = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    assert paths
    assert main(["validate", *paths]) == 0
    out = capsys.readouterr().out
    assert out.count("is valid") == len(paths)
    assert "(1 region, 2 providers, 1 model)" in out  # the local example


def test_validate_prints_every_problem_with_its_field_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, broken_route())
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f'{path}: spec.models[1].targets[0].provider: unknown provider "glm"' in err

    doc = broken_route()
    doc["spec"]["resilience"] = {
        "timeouts": {"connect": 2},
        "retries": {"attempts": "3", "bogus": 1},
    }
    doc["spec"]["models"][1]["targets"][0]["provider"] = "deepseek"
    path = write(tmp_path, doc)
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3  # all of them, not only the first
    assert any("spec.resilience.timeouts.connect: expected a duration" in line for line in lines)
    assert any("spec.resilience.retries.attempts: expected an integer" in line for line in lines)
    assert any("spec.resilience.retries.bogus: unknown field" in line for line in lines)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("key: [unclosed", "not valid YAML"),
        ("kind: Deployment\n---\nkind: Service\n", "expected exactly one ModelRoute"),
        (None, "cannot read file"),
    ],
)
def test_validate_explains_unreadable_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "route.yaml"
    if content is not None:
        path.write_text(content)
    assert main(["validate", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_router_refuses_an_invalid_config_with_exit_2(tmp_path: Path) -> None:
    result = run_router(write(tmp_path, broken_route()))
    assert result.returncode == 2
    assert 'spec.models[1].targets[0].provider: unknown provider "glm"' in result.stderr


def test_router_reports_a_missing_api_key(tmp_path: Path) -> None:
    doc = broken_route()
    doc["spec"]["models"].pop()
    doc["spec"]["providers"][0]["endpoints"][0]["apiKeyEnv"] = "MODELROUTE_TEST_UNSET_KEY"
    result = run_router(write(tmp_path, doc))
    assert result.returncode == 2
    assert "MODELROUTE_TEST_UNSET_KEY is not set" in result.stderr


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelroute.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("modelroute ")
