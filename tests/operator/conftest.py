"""Shared inputs for operator tests: example routes and a minimal valid one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelroute.operator.settings import OperatorSettings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))
SETTINGS = OperatorSettings(router_image="registry.example/modelroute:test")


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def minimal_route(
    name: str = "chat", regions: tuple[str, ...] = ("us-east-1", "eu-west-1")
) -> dict[str, Any]:
    """A valid route: one provider with a keyed endpoint per region, one model."""
    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": name, "namespace": "ai"},
        "spec": {
            "regions": [{"name": region} for region in regions],
            "providers": [
                {
                    "name": "deepseek",
                    "endpoints": [
                        {
                            "region": region,
                            "baseURL": "https://api.deepseek.com/v1",
                            "apiKeySecretRef": {"name": f"ds-{region}", "key": "apiKey"},
                        }
                        for region in regions
                    ],
                }
            ],
            "models": [
                {
                    "name": "chat-fast",
                    "targets": [{"provider": "deepseek", "model": "deepseek-chat"}],
                }
            ],
        },
    }


@pytest.fixture
def route() -> dict[str, Any]:
    return minimal_route()


@pytest.fixture(params=EXAMPLES, ids=[path.name for path in EXAMPLES])
def example(request: pytest.FixtureRequest) -> dict[str, Any]:
    return copy.deepcopy(load(request.param))
