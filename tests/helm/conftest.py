"""The ``helm`` fixture: a real helm binary, or a skip when it cannot be fetched at all."""

from __future__ import annotations

import pytest

from tests.tools import ToolUnavailable, tool

from .chart import Helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binary = tool("helm")
    except ToolUnavailable as exc:
        pytest.skip(f"no helm binary: {exc}")
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))
