"""``modelroute operator`` as the Deployment runs it: a process, its admin port, SIGTERM.

The process talks to the test API server through a kubeconfig, like ``kubectl``;
SIGTERM (what the kubelet sends) ends it with exit code 0 after it released the
Lease, so a standby replica takes over at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.operator.apiserver import ApiServer
from tests.operator.conftest import minimal_route
from tests.operator.harness import (
    LEASES,
    MARK,
    OPERATOR_NS,
    condition,
    eventually,
    live,
    seed_route,
    seed_secrets,
)

pytestmark = MARK


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def get(url: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


async def test_the_operator_command_leads_serves_probes_and_stops_cleanly(
    cluster: ApiServer, tmp_path: Path
) -> None:
    await seed_secrets(cluster, "ds-us-east-1")
    await seed_route(cluster, minimal_route(regions=("us-east-1",)))
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "POD_NAME": "modelroute-operator-7d9f-abcde",
        "POD_NAMESPACE": OPERATOR_NS,
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modelroute.cli",
        "operator",
        "--listen",
        f"127.0.0.1:{port}",
        "--region",
        "us-east-1",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 30  # a cold start on a busy machine
        while (ready := await get(f"http://127.0.0.1:{port}/readyz")) != (200, "leader\n"):
            assert process.returncode is None, "the operator exited"
            assert asyncio.get_running_loop().time() < deadline, ready
            await asyncio.sleep(0.1)
        assert await get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        await eventually(
            lambda: condition(cluster, "Ready").get("reason") == "RegionsNotReady", timeout=20
        )
        lease = live(cluster, LEASES, "modelroute-operator", namespace=OPERATOR_NS) or {}
        assert lease["spec"]["holderIdentity"] == "modelroute-operator-7d9f-abcde"
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
        assert process.stderr is not None
        stderr = (await process.stderr.read()).decode()
    assert code == 0, stderr
    lease = live(cluster, LEASES, "modelroute-operator", namespace=OPERATOR_NS) or {}
    assert lease["spec"]["holderIdentity"] == ""  # released for a standby
    assert "serving us-east-1" in stderr and "released lease" in stderr
