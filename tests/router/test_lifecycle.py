"""The router's life around its requests: drain, disconnects, hot reload, HTTP framing.

These are the behaviours a Kubernetes rollout and real clients lean on: a
SIGTERM that drops nothing, a client that hangs up and stops the upstream's
meter, a ConfigMap swapped under traffic, and an HTTP/1.1 server that frames
keep-alive, pipelined, oversized and malformed requests as clients expect.
Raw asyncio streams are used where a client library would hide the framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from modelroute.router.serve import RouterServer
from tests.router.conftest import RouterFactory, SimFactory, eventually, scrape, sse_events
from tests.router.conftest import metric_value as metric
from tests.router.conftest import quiet_route as route

CHAT = {"model": "chat-fast", "messages": [{"role": "user", "content": "Hello there"}]}
CHAT_BODY = orjson.dumps(CHAT)
STREAM_BODY = orjson.dumps({**CHAT, "stream": True})


# --- helpers -------------------------------------------------------------------


def request_bytes(
    path: str = "/v1/chat/completions", body: bytes = CHAT_BODY, **headers: str
) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: router", "Content-Type: application/json"]
    head += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes  # de-chunked

    def json(self) -> Any:
        return orjson.loads(self.body)


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_response(reader: asyncio.StreamReader) -> Response:
    """One HTTP/1.1 response, framed by Content-Length or chunked encoding."""
    async with asyncio.timeout(5):
        status, headers = await read_head(reader)
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await reader.readexactly(int(headers["content-length"]))
    return Response(status, headers, body)


async def at_eof(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection (and sent nothing more)."""
    async with asyncio.timeout(2):
        return await reader.read() == b""


@contextlib.asynccontextmanager
async def connect(
    port: int,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def content(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


# --- SIGTERM drain, in a real process ---------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sigterm_drains_a_stream_in_flight(
    make_sim: SimFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    tokens = 30
    sim = await make_sim(tokens=tokens, token_delay_ms=50)  # a stream of ~1.5 s
    config = tmp_path / "route.yaml"
    doc = route(
        {"deepseek": [("us-east-1", sim)]},
        server={"shutdownDelay": "1s", "drainTimeout": "10s"},
    )
    config.write_text(yaml.safe_dump(doc))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # cwd elsewhere than the repo root: `python -m` puts the cwd on sys.path, and the
    # repo's top-level operator/ would shadow the standard library's `operator`.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelroute.cli", "router",
        "--config", str(config), "--port", str(port), "--secrets-dir", str(tmp_path),
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            while True:
                if proc.returncode is not None:
                    output = await proc.stdout.read() if proc.stdout else b""
                    pytest.fail(f"router exited early ({proc.returncode}):\n{output.decode()}")
                try:
                    async with http.get(f"{base}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)

        async with http.post(
            f"{base}/v1/chat/completions", json={**CHAT, "stream": True}
        ) as stream:
            assert stream.status == 200
            first = await stream.content.readuntil(b"\n\n")
            assert b"delta" in first
            sigterm_at = asyncio.get_running_loop().time()
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.1)
            # Inside shutdownDelay: not ready, yet new connections are served.
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True)
            ) as new:
                async with new.get(f"{base}/readyz") as resp:
                    assert resp.status == 503
                    assert await resp.json() == {"status": "draining"}
                # (embeddings: the sim answers them at once, chat would take the 1.5 s)
                embed = {"model": "chat-fast", "input": "still here?"}
                async with new.post(f"{base}/v1/embeddings", json=embed) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["data"][0]["embedding"]
                    # and is asked to go elsewhere next time
                    assert resp.headers.get("connection") == "close"
            # (guards the test itself: the checks above must fall inside shutdownDelay)
            assert asyncio.get_running_loop().time() - sigterm_at < 1.0
            assert sim.stats.tokens_sent < tokens  # the stream is still going
            rest = await stream.content.read()
        events = sse_events(first + rest)
        assert events[-1] == "[DONE]"
        assert content(events) == " ".join(f"tok{i}" for i in range(tokens))
        assert not any(isinstance(e, dict) and "error" in e for e in events)
        async with asyncio.timeout(10):
            code = await proc.wait()
        assert code == 0
        assert sim.stats.cancelled == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# --- drain, in process: what each kind of connection sees ----------------------------


async def test_drain_closes_idle_keep_alives_and_finishes_busy_ones(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    sim = await make_sim(tokens=10, token_delay_ms=30)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    idle, busy = connect(router.port), connect(router.port)
    async with idle as (idle_reader, idle_writer), busy as (busy_reader, busy_writer):
        idle_writer.write(b"GET /healthz HTTP/1.1\r\nHost: router\r\n\r\n")
        assert (await read_response(idle_reader)).status == 200
        busy_writer.write(request_bytes(body=STREAM_BODY))
        await eventually(lambda: sim.stats.in_flight == 1)
        drained = asyncio.create_task(router.drain(delay=0.2, timeout=5))
        # The idle keep-alive goes at once, so its client reconnects elsewhere.
        assert await at_eof(idle_reader)
        # The busy one finishes its stream, is told to close, and is closed.
        streamed = await read_response(busy_reader)
        assert streamed.status == 200
        assert streamed.headers["connection"] == "close"
        assert content(sse_events(streamed.body)) == " ".join(f"tok{i}" for i in range(10))
        assert sse_events(streamed.body)[-1] == "[DONE]"
        assert await at_eof(busy_reader)
        assert await drained is True
    assert sim.stats.cancelled == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", router.port)


async def test_drain_timeout_cuts_what_is_still_running(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    sim = await make_sim(tokens=200, token_delay_ms=20)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        writer.write(request_bytes(body=STREAM_BODY))
        assert (await read_head(reader))[0] == 200
        assert await router.drain(delay=0, timeout=0.2) is False
        async with asyncio.timeout(2):
            while await reader.read(65536):
                pass  # the rest of what was sent, then EOF: the stream is cut, not hung
    await eventually(lambda: sim.stats.cancelled == 1, timeout=1.0)


# --- client disconnects -----------------------------------------------------------


async def test_client_disconnect_mid_stream_cancels_upstream(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(tokens=200, token_delay_ms=20)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        writer.write(request_bytes(body=STREAM_BODY))
        status, _ = await read_head(reader)
        assert status == 200
        received = b""
        async with asyncio.timeout(5):
            while received.count(b"data: ") < 4:
                received += await reader.read(4096)
        assert metric(await scrape(http, router), "modelroute_requests_in_flight") == 1
    # The client is gone: the upstream request ends now, not after 200 tokens.
    await eventually(lambda: sim.stats.cancelled == 1, timeout=1.0)
    sent = sim.stats.tokens_sent
    assert sent < 50
    await asyncio.sleep(0.2)
    assert sim.stats.tokens_sent == sent
    assert sim.stats.completed == 0
    assert sim.stats.in_flight == 0
    assert metric(await scrape(http, router), "modelroute_requests_in_flight") == 0


@pytest.mark.parametrize("hang_up", ["close", "reset"])
@pytest.mark.parametrize("body", [CHAT_BODY, STREAM_BODY], ids=["whole", "stream"])
async def test_client_disconnect_while_upstream_stalls_cancels_it(
    make_sim: SimFactory,
    make_router: RouterFactory,
    http: aiohttp.ClientSession,
    body: bytes,
    hang_up: str,
) -> None:
    sim = await make_sim(stall=True)  # accepts the request, never answers
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (_, writer):
        writer.write(request_bytes(body=body))
        await eventually(lambda: sim.stats.in_flight == 1)
        if hang_up == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # leaving the block closes the socket: a FIN, or an RST with linger 0
    await eventually(lambda: sim.stats.cancelled == 1, timeout=1.0)
    assert sim.stats.in_flight == 0
    assert metric(await scrape(http, router), "modelroute_requests_in_flight") == 0


# --- hot reload under traffic -------------------------------------------------------


def reloads(router: RouterServer, result: str) -> float | None:
    registry = router.metrics.registry
    return registry.get_sample_value("modelroute_config_reloads_total", {"result": result})


def replace_config(path: Path, doc: dict[str, Any] | str) -> None:
    """Swap the file atomically, as the kubelet does with a ConfigMap's symlink."""
    staged = path.with_suffix(".staged")
    staged.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    os.replace(staged, path)


async def test_hot_reload_under_traffic(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    old = await make_sim(latency_ms=5, name="old")
    new = await make_sim(latency_ms=5, name="new")
    router = await make_router(route({"deepseek": [("us-east-1", old)]}))
    answered: list[str] = []
    failures: list[str] = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            try:
                async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        failures.append(f"{resp.status}: {body!r}")
                    answered.append(resp.headers.get("x-sim-name", "?"))
            except aiohttp.ClientError as exc:
                failures.append(repr(exc))

    clients = [asyncio.create_task(client()) for _ in range(8)]
    try:
        await asyncio.sleep(0.4)
        replace_config(router.config_path, route({"openai": [("us-east-1", new)]}))
        await eventually(lambda: new.stats.by_path.get("/v1/chat/completions", 0) > 0, timeout=2.0)
        swapped_at = len(answered)
        await asyncio.sleep(0.4)
        # Invalid: a target naming a provider that does not exist.
        broken = route({"openai": [("us-east-1", new)]}, models={"chat-fast": [("nope", "m")]})
        replace_config(router.config_path, broken)
        await eventually(lambda: reloads(router, "invalid") == 1, timeout=2.0)
        await asyncio.sleep(0.3)
        replace_config(router.config_path, "spec: [this is not YAML\n")
        await eventually(lambda: reloads(router, "invalid") == 2, timeout=2.0)
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*clients)

    assert failures == []
    assert len(answered) > 50
    assert answered[0] == "old"
    # Once the new config is in, nothing goes to the old upstream any more (a request
    # in flight at the swap may still finish there, hence the margin of 8).
    assert set(answered[swapped_at + 8 :]) == {"new"}
    assert answered[-1] == "new"
    text = await scrape(http, router)
    assert metric(text, "modelroute_config_reloads_total", result="ok") == 1
    assert metric(text, "modelroute_config_reloads_total", result="invalid") == 2
    async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
        assert resp.status == 200
        assert resp.headers["x-modelroute-provider"] == "openai"


async def test_reload_applies_a_new_body_limit(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    doc = route({"deepseek": [("us-east-1", sim)]})
    router = await make_router(doc)
    body = big_chat_body()
    json = {"content-type": "application/json"}
    async with http.post(f"{router.url}/chat/completions", data=body, headers=json) as resp:
        assert resp.status == 200
    replace_config(
        router.config_path, {**doc, "spec": {**doc["spec"], "server": {"maxRequestBody": "1Ki"}}}
    )
    await eventually(lambda: reloads(router, "ok") == 1)
    async with http.post(f"{router.url}/chat/completions", data=body, headers=json) as resp:
        assert resp.status == 413


async def test_reload_picks_up_rotated_client_keys(
    make_sim: SimFactory, make_router: RouterFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    keys = tmp_path / "secrets" / "client-keys" / "keys"
    keys.parent.mkdir(parents=True)
    keys.write_text("sk-old\n")
    sim = await make_sim()
    auth = {"keysSecretRef": {"name": "client-keys", "key": "keys"}}
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}, auth=auth))

    async def status(key: str) -> int:
        headers = {"authorization": f"Bearer {key}"}
        async with http.post(f"{router.url}/chat/completions", json=CHAT, headers=headers) as resp:
            return resp.status

    assert (await status("sk-old"), await status("sk-new")) == (200, 401)
    replace_config(keys, "sk-new\n")  # a rotated Secret: only the key file changes
    await eventually(lambda: reloads(router, "ok") == 1)
    assert (await status("sk-old"), await status("sk-new")) == (401, 200)


# --- request bodies ---------------------------------------------------------------


@pytest.fixture
async def small_body_router(make_sim: SimFactory, make_router: RouterFactory) -> RouterServer:
    sim = await make_sim(tokens=3)
    return await make_router(
        route({"deepseek": [("us-east-1", sim)]}, server={"maxRequestBody": "1Ki"})
    )


def assert_openai_error(response: Response, code: str | None) -> None:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert error["param"] is None
    assert error["message"]


def big_chat_body() -> bytes:
    body = orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]})
    assert len(body) > 1024
    return body


async def test_body_over_limit_is_413(
    small_body_router: RouterServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{small_body_router.url}/chat/completions",
        data=big_chat_body(),
        headers={"content-type": "application/json"},
    ) as resp:
        assert resp.status == 413
        assert_openai_error(Response(resp.status, {}, await resp.read()), "request_too_large")
    # Just under the limit is fine.
    async with http.post(f"{small_body_router.url}/chat/completions", json=CHAT) as resp:
        assert resp.status == 200


async def test_chunked_body_over_limit_is_413(small_body_router: RouterServer) -> None:
    body = big_chat_body()
    async with connect(small_body_router.port) as (reader, writer):
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%b\r\n0\r\n\r\n"
            % (len(body), body)
        )
        response = await read_response(reader)
        assert response.status == 413
        assert_openai_error(response, "request_too_large")
        assert await at_eof(reader)


async def test_expect_100_continue_refused_before_the_body(
    small_body_router: RouterServer,
) -> None:
    # curl with a big body: headers first, body only after "100 Continue".
    body = big_chat_body()
    head = request_bytes(body=body, Expect="100-continue")[: -len(body)]
    async with connect(small_body_router.port) as (reader, writer):
        writer.write(head)
        response = await read_response(reader)
        assert response.status == 413  # not 100: the client never sends the body
        assert await at_eof(reader)


async def test_expect_100_continue_with_a_normal_body(small_body_router: RouterServer) -> None:
    head = request_bytes(Expect="100-continue")[: -len(CHAT_BODY)]
    async with connect(small_body_router.port) as (reader, writer):
        writer.write(head)
        async with asyncio.timeout(5):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(CHAT_BODY)
        response = await read_response(reader)
        assert response.status == 200
        assert response.json()["choices"][0]["message"]["content"] == "tok0 tok1 tok2"
        # and the connection is still good for the next request
        writer.write(request_bytes())
        assert (await read_response(reader)).status == 200


# --- connection handling ----------------------------------------------------------


async def test_keep_alive_serves_sequential_requests_on_one_connection(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    sim = await make_sim(tokens=4)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        for i in range(3):
            writer.write(request_bytes(X_Request_Id=f"seq-{i}"))
            response = await read_response(reader)
            assert response.status == 200
            assert response.headers["x-request-id"] == f"seq-{i}"
            assert response.headers.get("connection") != "close"
            # a stream's chunked framing must end cleanly too
            writer.write(request_bytes(body=STREAM_BODY))
            streamed = await read_response(reader)
            assert streamed.status == 200
            assert sse_events(streamed.body)[-1] == "[DONE]"
            assert content(sse_events(streamed.body)) == "tok0 tok1 tok2 tok3"
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: router\r\n\r\n")
        assert (await read_response(reader)).status == 200


async def test_pipelined_requests_are_answered_in_order(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    sim = await make_sim(latency_ms=100, tokens=2)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        # The slow request first: its answer must still come first.
        writer.write(
            request_bytes(X_Request_Id="first")
            + b"GET /healthz HTTP/1.1\r\nHost: router\r\n\r\n"
            + request_bytes(body=STREAM_BODY, X_Request_Id="third")
        )
        first = await read_response(reader)
        second = await read_response(reader)
        third = await read_response(reader)
    assert (first.status, first.headers["x-request-id"]) == (200, "first")
    assert first.json()["object"] == "chat.completion"
    assert (second.status, second.json()) == (200, {"status": "ok"})
    assert (third.status, third.headers["x-request-id"]) == (200, "third")
    assert sse_events(third.body)[-1] == "[DONE]"


async def test_connection_close_is_honoured(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    sim = await make_sim(tokens=2)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        writer.write(request_bytes(Connection="close"))
        assert (await read_response(reader)).status == 200
        assert await at_eof(reader)


@pytest.mark.parametrize(
    "garbage",
    [
        b"THIS IS NOT HTTP\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: router\r\nno colon in this header\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\nContent-Length: ten\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: router\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    ],
    ids=["request-line", "header-line", "content-length", "chunk-size"],
)
async def test_malformed_http_is_400_and_closes(
    make_sim: SimFactory, make_router: RouterFactory, garbage: bytes
) -> None:
    sim = await make_sim()
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        # A good request first: the bad one arrives on a kept-alive connection.
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: router\r\n\r\n")
        assert (await read_response(reader)).status == 200
        writer.write(garbage)
        response = await read_response(reader)
        assert response.status == 400
        assert response.headers["connection"] == "close"
        assert_openai_error(response, None)
        assert await at_eof(reader)
    assert sim.stats.requests == 0


async def test_head_response_has_no_body(make_sim: SimFactory, make_router: RouterFactory) -> None:
    sim = await make_sim()
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        writer.write(b"HEAD /healthz HTTP/1.1\r\nHost: router\r\n\r\n")
        async with asyncio.timeout(5):
            status, _ = await read_head(reader)
        assert status == 200
        # A HEAD answer ends with its headers; the next bytes belong to the next answer.
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: router\r\n\r\n")
        async with asyncio.timeout(5):
            assert (await reader.readexactly(9)) == b"HTTP/1.1 "


async def test_malformed_request_pipelined_after_a_good_one(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    sim = await make_sim(latency_ms=50, tokens=2)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        writer.write(request_bytes(X_Request_Id="good") + b"THIS IS NOT HTTP\r\n\r\n")
        # Answers come in request order: the good request's first, then the refusal.
        first = await read_response(reader)
        assert (first.status, first.headers.get("x-request-id")) == (200, "good")
        assert (await read_response(reader)).status == 400
        assert await at_eof(reader)


async def test_upgrade_is_ignored_and_the_request_answered(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    # RFC 9110: a server may ignore Upgrade (curl --http2 sends h2c on plain HTTP).
    sim = await make_sim()
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (reader, writer):
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: router\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        response = await read_response(reader)
        assert response.status == 200
        assert response.headers["connection"] == "close"
        assert await at_eof(reader)


async def test_a_pipelining_flood_is_answered_in_order_with_bounded_buffering(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    # More requests than the server queues ahead: it stops reading until the queue
    # drains, then resumes; every request is still answered, in order.
    sim = await make_sim(tokens=1)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    count = 100
    async with connect(router.port) as (reader, writer):
        writer.write(b"".join(request_bytes(X_Request_Id=f"r{i}") for i in range(count)))
        async with asyncio.timeout(20):
            ids = [(await read_response(reader)).headers.get("x-request-id") for _ in range(count)]
    assert ids == [f"r{i}" for i in range(count)]


async def test_idle_connections_close_but_slow_uploads_do_not(
    make_sim: SimFactory, make_router: RouterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelroute.router.http import server

    monkeypatch.setattr(server, "IDLE_TIMEOUT", 0.4)  # the sweeper reads it at start
    sim = await make_sim(tokens=1)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    async with connect(router.port) as (idle_reader, _), connect(router.port) as (reader, writer):
        whole = request_bytes()
        head, body = whole[: len(whole) - len(CHAT_BODY)], CHAT_BODY
        writer.write(head)
        for i in range(0, len(body), 8):  # about 1.2 s for the body: longer than the timeout
            writer.write(body[i : i + 8])
            await asyncio.sleep(0.1)
        assert (await read_response(reader)).status == 200
        assert await at_eof(idle_reader)  # the silent connection was closed meanwhile
