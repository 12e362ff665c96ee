"""Shared inputs for operator tests: example routes, a minimal valid one, the test API server."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock as kmock_
import pytest
import yaml

from modelroute.operator.settings import OperatorSettings
from tests.operator.apiserver import ApiServer
from tests.operator.harness import setup

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


@pytest.fixture
async def cluster(
    kmock: kmock_.KubernetesEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ApiServer]:
    """The test API server (modules mark themselves ``pytestmark = harness.MARK``)."""
    assert isinstance(kmock, ApiServer), "mark the module: pytestmark = MARK"
    setup(kmock, tmp_path, monkeypatch)
    yield kmock
    await kmock.hang_up()  # or the server waits for watchers that left long ago
