"""A scripted upstream that answers with exact bytes, and a router in its own process.

The simulator (:mod:`modelroute.router.sim`) is a well-behaved OpenAI API;
attacks need an upstream that is not: one that sends 1xx answers, gzips
unasked, resets a connection at a chosen byte, or never ends an event. Each
request gets the :class:`Reply` a script returns for it, and the upstream
counts what it received, so tests can tell what work was (re)sent.

:func:`start_router_process` runs ``modelroute router`` as a child process, as
a pod would, so memory and crash behaviour are measured on the real thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
import yaml

Ending = Literal["keep", "close", "reset", "stall"]


@dataclass
class Reply:
    """What to send for one request, and what to do with the connection after it."""

    data: bytes
    then: Ending = "keep"
    pause_at: int | None = None  # send this many bytes, wait ``pause`` s, send the rest
    pause: float = 0.0


Script = Callable[[int, bytes], Reply]  # (request number from 0, raw request) -> reply


def response(
    status: int = 200,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    framing: Literal["length", "chunked", "close"] = "length",
    version: str = "HTTP/1.1",
    before: bytes = b"",
) -> bytes:
    """Bytes of one response; ``before`` goes first (1xx answers)."""
    lines = [f"{version} {status} X"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        payload = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        lines.append("Connection: close")
        payload = body
    return before + ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def chat_json(text: str, model: str = "m") -> bytes:
    import orjson

    return orjson.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


def sse(*chunks: dict[str, Any] | str) -> bytes:
    import orjson

    out = b""
    for chunk in chunks:
        data = chunk.encode() if isinstance(chunk, str) else orjson.dumps(chunk)
        out += b"data: " + data + b"\n\n"
    return out


def delta(text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


@dataclass
class ScriptedUpstream:
    script: Script
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = await reader.readexactly(length) if length else b""
        return head + body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                number = len(self.requests)
                self.requests.append(request)
                reply = self.script(number, request)
                if reply.pause_at is not None:
                    writer.write(reply.data[: reply.pause_at])
                    await writer.drain()
                    await asyncio.sleep(reply.pause)
                    writer.write(reply.data[reply.pause_at :])
                else:
                    writer.write(reply.data)
                await writer.drain()
                if reply.then == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if reply.then == "close":
                    writer.close()
                    return
                if reply.then == "stall":
                    await asyncio.sleep(3600)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def start(self) -> ScriptedUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def route(*upstreams: ScriptedUpstream | str, **spec: Any) -> dict[str, Any]:
    """A route whose model ``chat`` falls back along ``upstreams`` (one provider each,
    all in the router's region); probes off, so only requests reach them."""
    urls = [u if isinstance(u, str) else u.url for u in upstreams]
    resilience = spec.pop("resilience", {})
    resilience.setdefault("healthCheck", {"enabled": False})
    resilience.setdefault("timeouts", {"firstToken": "3s", "total": "6s"})
    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "attacks"},
        "spec": {
            "regions": [{"name": "local"}],
            "providers": [
                {"name": f"p{i}", "endpoints": [{"region": "local", "baseURL": url}]}
                for i, url in enumerate(urls)
            ],
            "models": [
                {
                    "name": "chat",
                    "targets": [{"provider": f"p{i}", "model": "m"} for i in range(len(urls))],
                }
            ],
            "resilience": resilience,
            **spec,
        },
    }


@dataclass
class RouterProcess:
    proc: asyncio.subprocess.Process
    port: int
    config: Path
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def router_process(
    doc: dict[str, Any],
    tmp_path: Path,
    env: dict[str, str] | None = None,
    region: str | None = None,
) -> AsyncIterator[RouterProcess]:
    """``modelroute router`` in a child process, ready when this yields; stopped with
    SIGINT (no shutdown delay) when the block ends."""
    config = tmp_path / "route.yaml"
    config.write_text(yaml.safe_dump(doc))
    log = tmp_path / "router.log"
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | (env or {})
    with log.open("wb") as out:
        # cwd away from the repo root: its operator/ would shadow the stdlib's operator.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "modelroute.cli", "router", "--log-level", "debug",
            "--config", str(config), "--port", str(port),
            "--secrets-dir", str(tmp_path / "secrets"),
            *(["--region", region] if region else []),
            cwd=tmp_path, env=environ, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    router = RouterProcess(proc, port, config, log)
    try:
        async with asyncio.timeout(20), aiohttp.ClientSession() as http:
            while True:
                if proc.returncode is not None:
                    pytest.fail(f"router exited ({proc.returncode}):\n{router.output()}")
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with http.get(f"{router.base}/readyz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)
        yield router
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # SIGTERM would wait out shutdownDelay
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
