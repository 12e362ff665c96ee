"""Redis for tests: real ``redis-server`` processes on loopback, and a hostile fake one.

:func:`start_redis` runs a real server (no persistence, loopback only) on a
free port and returns once it answers PING; :class:`RedisServer` stops it
(``SIGSTOP``, the way a blackholed or frozen Redis looks from a client),
resumes it, kills it and restarts it on the same port. Tests use the
fixtures by importing them into their module::

    from tests.router.redis_server import RedisServer, redis_server, fresh_redis_server

    async def test_budget(redis_server: RedisServer) -> None:
        client = RedisClient(redis_server.url)

``redis_server`` is one server per test module (tests that share it use
their own keys, or ``FLUSHALL`` first); ``fresh_redis_server`` is one per
test, for tests that stop, kill or reconfigure it.

``redis-server`` missing is a failure, not a skip: CI installs it, and a
suite that silently skips its Redis tests proves nothing.

:func:`hostile_redis` is a TCP server that answers any command with exactly
the bytes a test gives it (garbage, a cut reply, a length of a terabyte),
and :func:`encode_reply` writes well-formed RESP2 replies for it and for the
parser's tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Literal

import pytest

from modelroute.router.state.errors import RedisError
from modelroute.router.state.resp import Reply

__all__ = [
    "RedisServer",
    "encode_reply",
    "fresh_redis_server",
    "hostile_redis",
    "redis_server",
    "start_redis",
]

READY_WITHIN = 5.0  # seconds for a started server to answer PING


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if found is None:
        pytest.fail(
            "redis-server is not installed: the Redis client's tests need a real server "
            "(apt-get install redis-server; CI installs it)",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """One redis-server process on 127.0.0.1."""

    port: int
    password: str | None = None
    tls: tuple[str, str] | None = None  # certificate and key files: TLS only, on ``port``
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _dir: tempfile.TemporaryDirectory[str] = field(
        default_factory=tempfile.TemporaryDirectory, repr=False
    )

    @property
    def url(self) -> str:
        """Without the password: tests pass it explicitly, or put it in the URL themselves."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self._dir.name, "--enable-debug-command", "local"]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            cert, key = self.tls
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert]
            args += ["--tls-key-file", key, "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        auth = f"AUTH {self.password}\r\n".encode() if self.password is not None else b""
        deadline = time.monotonic() + READY_WITHIN
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"redis-server on port {self.port} exited ({self.process.returncode})")
            try:
                with contextlib.ExitStack() as stack:
                    sock = stack.enter_context(
                        socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
                    )
                    if self.tls is not None:
                        sock = stack.enter_context(unverified.wrap_socket(sock))
                    sock.sendall(auth + b"PING\r\n")
                    answer = b""
                    while b"PONG" not in answer and b"-" not in answer:
                        chunk = sock.recv(1024)
                        if not chunk:
                            break
                        answer += chunk
                    if b"+PONG\r\n" in answer:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.01)

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections and takes bytes; nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Kill it (a stopped process too) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)

    def restart(self) -> None:
        """Kill it and start a new server on the same port (empty: no persistence)."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()


def start_redis(password: str | None = None, tls: tuple[str, str] | None = None) -> RedisServer:
    """A running redis-server on a free loopback port (TLS only, with ``tls``); :meth:`RedisServer.close` it."""
    server = RedisServer(free_port(), password, tls)
    server.start()
    return server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the test module."""
    server = start_redis()
    yield server
    server.close()


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, to stop, kill or restart."""
    server = start_redis()
    yield server
    server.close()


def encode_reply(value: Reply) -> bytes:
    """A reply as Redis would send it (bytes as bulk strings)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, RedisError):
        return b"-%s\r\n" % value.message.encode()
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    return b"*%d\r\n%s" % (len(value), b"".join(encode_reply(item) for item in value))


Part = bytes | float  # bytes are sent as they are; a float pauses that many seconds


@contextlib.asynccontextmanager
async def hostile_redis(
    *parts: Part, then: Literal["keep", "close"] = "close"
) -> AsyncIterator[str]:
    """A fake Redis on loopback (its URL is yielded): on each connection it waits for
    the first bytes of a command, sends ``parts``, then closes or keeps the connection
    (reading and discarding whatever comes) until the client closes it."""
    handlers: set[asyncio.Task[None]] = set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await reader.read(65536):
                for part in parts:
                    if isinstance(part, float):
                        await asyncio.sleep(part)
                    else:
                        writer.write(part)
                        await writer.drain()
                if then == "keep":
                    while await reader.read(65536):
                        pass
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()

    def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(answer(reader, writer))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)
        await server.wait_closed()
