"""Admin endpoints: the router's on their own port (the operator always sets it), and the
operator's own /healthz, /readyz and /metrics.

The router's admin port is part of the contract the operator renders (args,
probes, scrape annotations, Services): with ``--admin-port`` the router serves
``/healthz``, ``/readyz``, ``/metrics`` and ``/status`` there and not on the API
port, which clients reach; without it (a laptop), everything stays on one port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from modelroute import cli
from modelroute.operator import controller as controller_module
from modelroute.operator.reconcile import Outcome, reconcile
from modelroute.router.serve import RouterServer
from tests.operator.apiserver import ApiServer
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    MARK,
    condition,
    eventually,
    running_operator,
    seed_route,
    seed_secrets,
)

ADMIN = ("/healthz", "/readyz", "/metrics", "/status")


def route_file(tmp_path: Path) -> Path:
    document = {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "chat"},
        "spec": {
            "regions": [{"name": "local"}],
            "providers": [
                {
                    "name": "p",
                    "endpoints": [{"region": "local", "baseURL": "http://127.0.0.1:9/v1"}],
                }
            ],
            "models": [{"name": "chat-fast", "targets": [{"provider": "p", "model": "m"}]}],
        },
    }
    path = tmp_path / "route.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def status_of(http: aiohttp.ClientSession, port: int, path: str) -> int:
    async with http.get(f"http://127.0.0.1:{port}{path}") as response:
        await response.read()
        return response.status


async def test_router_with_an_admin_port_serves_admin_paths_there_only(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    router = RouterServer(route_file(tmp_path), secrets_dir=tmp_path, admin_port=0)
    await router.start()
    try:
        assert router.admin_port not in (None, 0, router.port)
        admin = router.admin_port
        assert admin is not None
        for path in ADMIN:
            assert await status_of(http, admin, path) == 200, path
            assert await status_of(http, router.port, path) == 404, path
        assert await status_of(http, router.port, "/v1/models") == 200
        assert await status_of(http, admin, "/v1/models") == 404
        async with http.get(f"http://127.0.0.1:{admin}/metrics") as response:
            assert "modelroute_requests_in_flight" in await response.text()
        # draining: readiness fails on the admin port, as the kubelet's probe sees it
        router.app.draining = True
        assert await status_of(http, admin, "/readyz") == 503
    finally:
        await router.close()


async def test_router_without_an_admin_port_keeps_everything_on_one_port(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    router = RouterServer(route_file(tmp_path), secrets_dir=tmp_path)
    await router.start()
    try:
        assert router.admin_port is None
        for path in ADMIN:
            assert await status_of(http, router.port, path) == 200, path
    finally:
        await router.close()


def test_the_router_command_takes_the_admin_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []

    async def serve(*args: Any) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr("modelroute.router.serve.serve", serve)
    config = str(route_file(tmp_path))
    assert cli.main(["router", "--config", config, "--port", "8080", "--admin-port", "9090"]) == 0
    assert cli.main(["router", "--config", config]) == 0
    assert [call[-1] for call in calls] == [9090, None]


@MARK
async def test_operator_probes_and_metrics_answer_while_a_reconcile_hogs_the_cpu(
    cluster: ApiServer, monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession
) -> None:
    real = reconcile
    busy = asyncio.Event()

    def slow(*args: Any, **kwargs: Any) -> Outcome:
        busy.set()
        until = time.monotonic() + 4.0
        while time.monotonic() < until:  # a pure-Python loop holding the GIL as it can
            sum(range(1000))
        return real(*args, **kwargs)

    monkeypatch.setattr(controller_module, "reconcile", slow)
    await seed_secrets(cluster, "ds-us-east-1", "ds-eu-west-1")
    await seed_route(cluster, minimal_route())
    async with running_operator() as operator:
        port = operator.serve_admin("127.0.0.1", 0)
        await eventually(busy.is_set)
        for path in ("/healthz", "/readyz", "/metrics"):
            started = time.monotonic()
            assert await status_of(http, port, path) == 200, path
            assert time.monotonic() - started < 2.0, path  # not after the loop; the probe waits 5 s
        await eventually(lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady")
        await eventually(lambda: operator.metrics.reconciles.labels("ok")._value.get() >= 1)
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        for name in (
            "modelroute_operator_reconciles_total",
            "modelroute_operator_reconcile_duration_seconds_bucket",
            "modelroute_operator_api_requests_total",
            'modelroute_operator_routes{ready="False",reason="RegionsNotReady"} 1.0',
            "modelroute_operator_leader 1.0",
            "modelroute_operator_workqueue_depth",
        ):
            assert name in text, name
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert await response.text() == "leader\n"
