"""A real Prometheus for tests: Debian's ``prometheus`` on a free loopback port.

``Prometheus(workdir, scrape_configs)`` writes a config (1 s scrape and rule
evaluation interval) and a fresh TSDB directory under ``workdir``; ``start()``
launches the server and waits for ``/-/ready``; ``stop()`` ends it (SIGTERM, then
SIGKILL). Both are coroutines: the server is an asyncio subprocess of the test's loop. ``query()`` runs an instant query through the HTTP API and returns the
decoded JSON answer, errors included, so callers can check ``status`` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
MISSING = (
    "Debian's prometheus package is not installed (no `prometheus`/`promtool` on PATH); "
    "install it with `apt-get install -y prometheus` to run the metrics pipeline tests"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """One Prometheus server process owned by a test."""

    def __init__(
        self,
        workdir: Path,
        scrape_configs: list[dict[str, Any]],
        rule_files: list[Path] | None = None,
        interval: str = "1s",
    ) -> None:
        if PROMETHEUS is None:
            raise PrometheusError(MISSING)
        self.binary = PROMETHEUS
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(path) for path in rule_files or []],
            "scrape_configs": scrape_configs,
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        with self.log_path.open("wb") as log:
            self.process = process = await asyncio.create_subprocess_exec(
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if process.returncode is not None:
                    raise PrometheusError(
                        f"prometheus exited with {process.returncode}:\n{self.log()}"
                    )
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/-/ready") as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    await self.stop()
                    raise PrometheusError(f"prometheus not ready in {timeout}s:\n{self.log()}")
                await asyncio.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>; the decoded answer, whatever its status."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/{path}", params=params) as response,
        ):
            answer: dict[str, Any] = await response.json(content_type=None)
            return answer

    async def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return await self.api("query", **params)

    async def vector(self, expr: str) -> dict[str, float]:
        """An instant query that must succeed: its samples keyed by their ``pod`` label."""
        answer = await self.query(expr)
        if answer.get("status") != "success":
            raise PrometheusError(f"query failed: {answer}\n{expr}")
        return {
            sample["metric"].get("pod", ""): float(sample["value"][1])
            for sample in answer["data"]["result"]
        }

    async def wait_for(self, expr: str, count: int, timeout: float = 15.0) -> None:
        """Until ``expr`` returns at least ``count`` samples."""
        deadline = time.monotonic() + timeout
        while True:
            answer = await self.query(expr)
            if answer.get("status") == "success" and len(answer["data"]["result"]) >= count:
                return
            if time.monotonic() > deadline:
                raise PrometheusError(f"{expr!r}: fewer than {count} samples after {timeout}s")
            await asyncio.sleep(0.2)
