"""Each defect the hostile review found, reproduced against a real router process.

Numbers refer to issue 16's list. Every test here failed before its fix:
the upstream is scripted to misbehave byte for byte (:mod:`.scripted`), the
client is raw or aiohttp, and the router runs as ``modelroute router`` in its
own process, so crashes, memory and framing are those a pod would show.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import sys
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from tests.router.scripted import (
    Reply,
    ScriptedUpstream,
    chat_json,
    delta,
    free_port,
    response,
    route,
    router_process,
    sse,
)
from tests.router.test_lifecycle import connect, read_head, read_response, request_bytes

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def marker_of(request: bytes) -> str:
    """The text of the client's message (each test client sends its own)."""
    body = request.split(b"\r\n\r\n", 1)[1]
    return str(orjson.loads(body)["messages"][0]["content"])


async def post(
    http: aiohttp.ClientSession, base: str, body: dict[str, Any] | None = None, **kw: Any
) -> tuple[int, dict[str, str], bytes]:
    async with http.post(f"{base}/v1/chat/completions", json=body or CHAT, **kw) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def started(script: Any) -> ScriptedUpstream:
    return await ScriptedUpstream(script).start()


# --- 1. large non-streaming answers complete ------------------------------------------


async def test_1_an_answer_of_several_mib_completes(tmp_path: Path) -> None:
    big = orjson.dumps(
        {
            "object": "list",
            "data": [{"embedding": [0.123456] * 1536, "index": i} for i in range(120)],
        }
    )
    assert len(big) > 1024 * 1024
    upstream = await started(lambda n, req: Reply(response(200, big)))
    embed = {"model": "chat", "input": ["x"] * 120}
    async with (
        router_process(route(upstream), tmp_path) as router,
        aiohttp.ClientSession() as http,
        http.post(f"{router.base}/v1/embeddings", json=embed) as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == big
    assert len(upstream.requests) == 1


# --- 2. 1xx answers are skipped: no answer reaches the wrong client --------------------


async def test_2_informational_answers_never_hand_one_clients_answer_to_another(
    tmp_path: Path,
) -> None:
    def script(n: int, request: bytes) -> Reply:
        early = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
        return Reply(response(200, chat_json(marker_of(request)), before=early))

    upstream = await started(script)
    async with router_process(route(upstream), tmp_path) as router, aiohttp.ClientSession() as http:
        for i in range(5):  # sequential: every one reuses the pooled connection
            body = {**CHAT, "messages": [{"role": "user", "content": f"client-{i}"}]}
            status, _, answer = await post(http, router.base, body)
            assert status == 200
            assert orjson.loads(answer)["choices"][0]["message"]["content"] == f"client-{i}"
    assert upstream.connections == 1  # the connection was reused, and stayed in step


# --- 3. a header without a line end cannot grow the router's memory --------------------


async def test_3_an_endless_header_value_gets_431_with_bounded_memory(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    async with router_process(route(upstream), tmp_path) as router:
        before = router.rss_kib()
        async with connect(router.port) as (reader, writer):
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nX-Big: ")
            piece = b"a" * (1024 * 1024)
            for _ in range(32):
                writer.write(piece)
                await writer.drain()  # the router drains what follows its 431
            status, _ = await read_head(reader)
        assert status == 431
        assert router.rss_kib() - before < 8 * 1024, "32 MiB header grew the router's memory"


# --- 4. content codings are undone or refused, never relayed as JSON ------------------


async def test_4_gzip_and_deflate_answers_reach_the_client_decoded(tmp_path: Path) -> None:
    answer = chat_json("decoded")
    stream = sse(delta("de"), delta("coded", "stop"), "[DONE]")

    def script(n: int, request: bytes) -> Reply:
        streaming = b'"stream":true' in request
        payload = stream if streaming else answer
        coded = gzip.compress(payload) if n % 2 == 0 else zlib.compress(payload)
        coding = "gzip" if n % 2 == 0 else "deflate"
        kind = "text/event-stream" if streaming else "application/json"
        headers = {"Content-Encoding": coding, "Content-Type": kind}
        return Reply(response(200, coded, headers=headers, framing="chunked"))

    upstream = await started(script)
    async with router_process(route(upstream), tmp_path) as router, aiohttp.ClientSession() as http:
        for _ in range(2):
            status, headers, body = await post(http, router.base)
            assert status == 200 and "content-encoding" not in {k.lower() for k in headers}
            assert orjson.loads(body)["choices"][0]["message"]["content"] == "decoded"
        for _ in range(2):
            status, headers, body = await post(http, router.base, {**CHAT, "stream": True})
            assert status == 200
            assert b"[DONE]" in body and b'"coded"' in body
    assert b"accept-encoding: identity" in upstream.requests[0].lower()


async def test_4_an_unknown_coding_fails_over_instead_of_relaying_bytes(tmp_path: Path) -> None:
    brotli = await started(
        lambda n, req: Reply(response(200, b"\x1b\x03\x00\xf8", headers={"Content-Encoding": "br"}))
    )
    good = await started(lambda n, req: Reply(response(200, chat_json("plain"))))
    async with (
        router_process(route(brotli, good), tmp_path) as router,
        aiohttp.ClientSession() as http,
    ):
        status, headers, body = await post(http, router.base)
    assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "plain"
    assert headers["x-modelroute-provider"] == "p1"


# --- 5. a reset is never a clean end -------------------------------------------------


async def test_5_reset_inside_a_close_delimited_body_fails_over(tmp_path: Path) -> None:
    cut = response(200, chat_json("truncated"), framing="close", version="HTTP/1.0")
    broken = await started(lambda n, req: Reply(cut[: len(cut) - 20], then="reset"))
    good = await started(lambda n, req: Reply(response(200, chat_json("whole"))))
    async with (
        router_process(route(broken, good), tmp_path) as router,
        aiohttp.ClientSession() as http,
    ):
        status, _headers, body = await post(http, router.base)
    assert status == 200
    assert orjson.loads(body)["choices"][0]["message"]["content"] == "whole"


async def test_5_clean_close_inside_close_delimited_json_is_not_success(tmp_path: Path) -> None:
    cut = response(200, chat_json("truncated"), framing="close", version="HTTP/1.0")
    broken = await started(lambda n, req: Reply(cut[: len(cut) - 20], then="close"))
    async with router_process(route(broken), tmp_path) as router, aiohttp.ClientSession() as http:
        status, _, body = await post(http, router.base)
    assert status >= 500  # never a 200 with half a JSON document
    assert orjson.loads(body)["error"]["message"]


async def test_5_reset_inside_a_close_delimited_stream_ends_with_an_error_event(
    tmp_path: Path,
) -> None:
    events = sse(delta("Hello"), delta(" wor"))
    head = response(200, b"", headers={"Content-Type": "text/event-stream"}, framing="close")
    broken = await started(lambda n, req: Reply(head + events, then="reset"))
    async with router_process(route(broken), tmp_path) as router, aiohttp.ClientSession() as http:
        status, _, body = await post(http, router.base, {**CHAT, "stream": True})
    assert status == 200
    assert b"Hello" in body and b"[DONE]" not in body
    assert b"stream_interrupted" in body.split(b"\n\n")[-2]


# --- 6. a written request is never re-sent behind the client's back -------------------


async def test_6_a_request_the_upstream_read_is_not_replayed_silently(tmp_path: Path) -> None:
    # The first request opens a pooled connection; on the second, the upstream reads
    # the whole request, "works", and dies before answering.
    def script(n: int, request: bytes) -> Reply:
        if n == 0:
            return Reply(response(200, chat_json("first")))
        return Reply(b"", then="reset", pause_at=0, pause=0.3)

    upstream = await started(script)
    doc = route(upstream, resilience={"retries": {"retryOn": ["connect-failure", "5xx"]}})
    async with router_process(doc, tmp_path) as router, aiohttp.ClientSession() as http:
        assert (await post(http, router.base))[0] == 200
        status, _headers, body = await post(http, router.base)
    assert status >= 500
    assert len(upstream.requests) == 2, "the request was sent again after the upstream read it"
    assert b"127.0.0.1" not in body  # no upstream address in what the client sees


async def test_6_with_reset_in_retry_on_each_resend_is_a_counted_attempt(tmp_path: Path) -> None:
    def script(n: int, request: bytes) -> Reply:
        if n == 0:
            return Reply(response(200, chat_json("first")))
        return Reply(b"", then="reset")

    upstream = await started(script)
    async with router_process(route(upstream), tmp_path) as router, aiohttp.ClientSession() as http:
        assert (await post(http, router.base))[0] == 200
        status, headers, _ = await post(http, router.base)
    attempts = int(headers["x-modelroute-attempts"])
    assert status == 503 and attempts == 3  # 1 + retries.attempts, by the default policy
    assert len(upstream.requests) == 1 + attempts  # every send is an attempt the router counted


# --- 8. credentials: refused when malformed, never relayed -----------------------------


def keyed_route(upstream: ScriptedUpstream) -> dict[str, Any]:
    doc = route(upstream)
    doc["spec"]["providers"][0]["endpoints"][0]["apiKeySecretRef"] = {"name": "k", "key": "key"}
    return doc


async def test_8_a_key_with_a_line_break_is_refused_at_load(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    (tmp_path / "secrets" / "k").mkdir(parents=True)
    (tmp_path / "secrets" / "k" / "key").write_text("sk-canary-123456\nsecond-line\n")
    config = tmp_path / "route.yaml"
    config.write_text(yaml.safe_dump(keyed_route(upstream)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "modelroute.cli", "router", "--config", str(config),
        "--port", "0", "--secrets-dir", str(tmp_path / "secrets"),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await proc.communicate()
    assert proc.returncode == 2
    assert b"secret k/key" in output and b"control character" in output
    assert b"sk-canary" not in output


async def test_8_a_canary_key_appears_nowhere_a_client_or_operator_can_read(
    tmp_path: Path,
) -> None:
    canary = "sk-canary-7a7a7a7a"

    def script(n: int, request: bytes) -> Reply:
        auth = next(line for line in request.split(b"\r\n") if line.lower().startswith(b"auth"))
        if n % 3 == 0:  # an OpenAI-shaped 400 quoting the request's key, in body and header
            body = b'{"error": {"message": "bad header: ' + auth + b'", "type": "x"}}'
            return Reply(response(400, body, headers={"X-Echo": auth.decode()}))
        if n % 3 == 1:  # a plain-text 500 quoting it (re-worded by the router)
            return Reply(response(500, b"upstream broke on " + auth))
        return Reply(b"HTTP/1.1 200 OK\r\nX-Bad: " + auth + b"\r\n\r\n", then="reset")

    upstream = await started(script)
    (tmp_path / "secrets" / "k").mkdir(parents=True)
    (tmp_path / "secrets" / "k" / "key").write_text(canary + "\n")
    seen: list[str] = []
    async with (
        router_process(keyed_route(upstream), tmp_path) as router,
        aiohttp.ClientSession() as http,
    ):
        for body in (CHAT, CHAT, CHAT, {**CHAT, "stream": True}, CHAT, CHAT):
            status, headers, answer = await post(http, router.base, body)
            seen.append(f"{status} {headers} {answer!r}")
        for path in ("/status", "/metrics", "/v1/models"):
            async with http.get(f"{router.base}{path}") as resp:
                seen.append(await resp.text())
    assert any("[REDACTED]" in text for text in seen)  # the echo did reach the router
    for text in seen:
        assert canary not in text
    log = router.output()
    assert "DEBUG" in log and "attempt failed" in log  # logs at every level were written
    assert canary not in log


# --- 9. a broken config file does not stop hot reload ---------------------------------


async def test_9_a_config_that_is_not_utf8_is_rejected_and_reload_goes_on(tmp_path: Path) -> None:
    first = await started(lambda n, req: Reply(response(200, chat_json("first"))))
    second = await started(lambda n, req: Reply(response(200, chat_json("second"))))
    async with router_process(route(first), tmp_path) as router, aiohttp.ClientSession() as http:
        router.config.write_bytes(b"\xff\xfe not utf-8 \x80")
        await asyncio.sleep(2.5)  # the watcher polls every second
        assert (await post(http, router.base))[0] == 200  # still serving the old config
        router.config.write_text(yaml.safe_dump(route(second)))
        async with asyncio.timeout(5):
            while True:
                _, _, body = await post(http, router.base)
                if orjson.loads(body)["choices"][0]["message"]["content"] == "second":
                    break
                await asyncio.sleep(0.2)
        async with http.get(f"{router.base}/metrics") as resp:
            assert 'modelroute_config_reloads_total{result="invalid"} 1.0' in await resp.text()
    assert "not valid UTF-8" in router.output()


# --- 10. one endless SSE event costs bounded memory and time ---------------------------


async def test_10_an_event_with_no_boundary_is_cut_at_the_cap(tmp_path: Path) -> None:
    head = response(200, b"", headers={"Content-Type": "text/event-stream"}, framing="close")
    first = sse(delta("Hi"))
    endless = b"data: " + b"x" * (16 * 1024 * 1024)
    upstream = await started(lambda n, req: Reply(head + first + endless, then="close"))
    async with router_process(route(upstream), tmp_path) as router, aiohttp.ClientSession() as http:
        before = router.rss_kib()
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        status, _, body = await post(http, router.base, {**CHAT, "stream": True})
        took = loop.time() - started_at
        grew = router.rss_kib() - before
    assert status == 200 and b"Hi" in body
    assert b"stream_interrupted" in body and len(body) < 64 * 1024
    assert grew < 24 * 1024, f"RSS grew {grew} KiB"
    assert took < 3


# --- 11. an error event after content counts against the endpoint ---------------------


async def test_11_error_events_after_content_eject_the_endpoint(tmp_path: Path) -> None:
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    head = response(200, b"", headers={"Content-Type": "text/event-stream"}, framing="close")
    bad = await started(lambda n, req: Reply(head + sse(delta("Hi"), error), then="close"))
    good = await started(lambda n, req: Reply(response(200, chat_json("fine"))))
    async with (
        router_process(route(bad, good), tmp_path) as router,
        aiohttp.ClientSession() as http,
    ):
        for _ in range(5):  # consecutiveErrors: 5
            status, _, body = await post(http, router.base, {**CHAT, "stream": True})
            assert status == 200 and b"overloaded" in body
        async with http.get(f"{router.base}/status") as resp:
            states = {e["provider"]: e["state"] for e in (await resp.json())["endpoints"]}
        assert states["p0"] == "ejected"
        status, headers, _ = await post(http, router.base, {**CHAT, "stream": True})
        assert status == 200 and headers["x-modelroute-provider"] == "p1"


# --- slow and many clients -------------------------------------------------------------


async def test_a_trickled_body_gets_408_and_the_upstream_is_never_called(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    doc = route(upstream, server={"clientBodyTimeout": "1s", "minBodyRate": "1Ki"})
    async with router_process(doc, tmp_path) as router, connect(router.port) as (reader, writer):
        whole = request_bytes(body=orjson.dumps(CHAT))
        writer.write(whole[:-40])  # the head and most of the body, then a trickle

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in whole[-40:-1]:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.1)  # 10 bytes/s: under minBodyRate

        loop = asyncio.get_running_loop()
        began = loop.time()
        sender = asyncio.create_task(trickle())
        answer = await read_response(reader)
        took = loop.time() - began
        sender.cancel()
    assert answer.status == 408 and answer.json()["error"]["code"] == "request_timeout"
    assert 1.0 <= took < 3.5
    assert not upstream.requests


async def test_connections_over_max_connections_get_503(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    doc = route(upstream, server={"maxConnections": 2})
    async with router_process(doc, tmp_path) as router:
        async with connect(router.port), connect(router.port):
            await asyncio.sleep(0.2)
            async with connect(router.port) as (reader, writer):
                writer.write(request_bytes(body=orjson.dumps(CHAT)))
                refused = await read_response(reader)
        assert refused.status == 503
        assert refused.json()["error"]["code"] == "too_many_connections"
        async with connect(router.port) as (reader, writer):  # the two are gone: served again
            writer.write(request_bytes(body=orjson.dumps(CHAT)))
            assert (await read_response(reader)).status == 200


# --- 12. the smaller ones --------------------------------------------------------------


async def test_12_bodies_not_declared_as_json_get_415(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    async with router_process(route(upstream), tmp_path) as router, aiohttp.ClientSession() as http:
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            async with http.post(
                f"{router.base}/v1/chat/completions",
                data=orjson.dumps(CHAT),
                headers={"Content-Type": kind},
            ) as resp:
                assert resp.status == 415
                assert "application/json" in (await resp.json())["error"]["message"]
        ok = {"Content-Type": "application/json; charset=utf-8"}
        async with http.post(
            f"{router.base}/v1/chat/completions", data=orjson.dumps(CHAT), headers=ok
        ) as resp:
            assert resp.status == 200
    assert len(upstream.requests) == 1


async def test_12_http10_clients_get_no_chunks_and_no_keep_alive(tmp_path: Path) -> None:
    stream = sse(delta("one"), delta(" two", "stop"), "[DONE]")
    head = {"Content-Type": "text/event-stream"}
    upstream = await started(
        lambda n, req: Reply(response(200, stream, headers=head, framing="chunked"))
    )
    async with router_process(route(upstream), tmp_path) as router:
        body = orjson.dumps({**CHAT, "stream": True})
        async with connect(router.port) as (reader, writer):
            writer.write(
                b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n"
                b"Connection: keep-alive\r\nExpect: 100-continue\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
            )
            raw = await asyncio.wait_for(reader.read(), 5)  # the router closes: EOF ends it
        head_bytes, _, rest = raw.partition(b"\r\n\r\n")
        assert b" 100 " not in raw.split(b"\r\n", 1)[0]
        assert b"transfer-encoding" not in head_bytes.lower()
        assert b"connection: close" in head_bytes.lower()
        assert rest.startswith(b"data: ") and rest.endswith(b"data: [DONE]\n\n")


async def test_12_absolute_form_targets_are_served(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    async with (
        router_process(route(upstream), tmp_path) as router,
        connect(router.port) as (reader, writer),
    ):
        target = f"http://127.0.0.1:{router.port}/v1/chat/completions"
        writer.write(request_bytes(target, orjson.dumps(CHAT)))
        assert (await read_response(reader)).status == 200


async def test_12_upstream_cannot_inject_router_headers_or_pass_junk_as_success(
    tmp_path: Path,
) -> None:
    def script(n: int, request: bytes) -> Reply:
        if n % 3 == 0:  # a 200 that is not JSON
            return Reply(
                response(200, b"<html>portal</html>", headers={"Content-Type": "text/html"})
            )
        if n % 3 == 1:  # a redirect
            return Reply(response(301, b"", headers={"Location": "http://evil.example/"}))
        return Reply(response(200, chat_json("real"), headers={"X-Modelroute-Provider": "fake"}))

    upstream = await started(script)
    doc = route(upstream, resilience={"outlierDetection": {"consecutiveErrors": 10}})
    async with router_process(doc, tmp_path) as router, aiohttp.ClientSession() as http:
        status, headers, body = await post(http, router.base, allow_redirects=False)
    assert status == 200 and headers["x-modelroute-provider"] == "p0"
    assert orjson.loads(body)["choices"][0]["message"]["content"] == "real"
    assert headers["x-modelroute-attempts"] == "3"


async def test_12_stream_must_be_a_boolean(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    async with router_process(route(upstream), tmp_path) as router, aiohttp.ClientSession() as http:
        status, _, body = await post(http, router.base, {**CHAT, "stream": "true"})
    assert status == 400 and orjson.loads(body)["error"]["param"] == "stream"
    assert not upstream.requests


async def test_12_a_malformed_event_after_content_ends_the_stream_with_an_error(
    tmp_path: Path,
) -> None:
    head = response(200, b"", headers={"Content-Type": "text/event-stream"}, framing="close")
    events = sse(delta("Hi")) + b'data: {"choices": [{"delta": {"content": "x"\n\n' + sse("[DONE]")
    upstream = await started(lambda n, req: Reply(head + events, then="close"))
    async with router_process(route(upstream), tmp_path) as router, aiohttp.ClientSession() as http:
        status, _, body = await post(http, router.base, {**CHAT, "stream": True})
    parsed = [orjson.loads(e[6:]) for e in body.split(b"\n\n") if e.startswith(b"data: {")]
    assert status == 200 and parsed[0]["choices"][0]["delta"]["content"] == "Hi"
    assert parsed[-1]["error"]["code"] == "stream_interrupted"  # every event parses


async def test_12_html_error_pages_reach_the_client_in_openai_shape(tmp_path: Path) -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    upstream = await started(
        lambda n, req: Reply(response(413, page, headers={"Content-Type": "text/html"}))
    )
    async with router_process(route(upstream), tmp_path) as router, aiohttp.ClientSession() as http:
        status, headers, body = await post(http, router.base)
    assert status == 413 and headers["Content-Type"] == "application/json"
    error = orjson.loads(body)["error"]
    assert error["message"] == "The upstream answered 413: 502 Bad Gateway nginx"
    assert error["code"] == "upstream_error"


async def test_12_status_shows_no_userinfo_or_query_but_requests_keep_the_query(
    tmp_path: Path,
) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    url = f"http://user:sk-pass-9999@127.0.0.1:{upstream.port}/v1?api-version=2024&key=sk-q"
    async with (
        router_process(route(url), tmp_path) as router,
        aiohttp.ClientSession() as http,
        http.get(f"{router.base}/status") as resp,
    ):
        text = await resp.text()
        assert (await post(http, router.base))[0] == 200
    # Azure-style `?api-version=` is kept on every request, after the API path.
    assert upstream.requests[0].startswith(
        b"POST /v1/chat/completions?api-version=2024&key=sk-q HTTP/1.1\r\n"
    )
    assert f"http://127.0.0.1:{upstream.port}/v1" in text
    assert "sk-pass" not in text and "sk-q" not in text and "user" not in text


# --- 7. the router's own key refused: fail over, eject, never blame the client ---------


async def test_7_a_401_for_the_routers_key_fails_over_and_ejects(tmp_path: Path) -> None:
    denied = (
        b'{"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}'
    )
    revoked = await started(lambda n, req: Reply(response(401, denied)))
    good = await started(lambda n, req: Reply(response(200, chat_json("fine"))))
    async with (
        router_process(route(revoked, good), tmp_path) as router,
        aiohttp.ClientSession() as http,
    ):
        for _ in range(3):
            status, headers, _ = await post(http, router.base)
            assert status == 200 and headers["x-modelroute-provider"] == "p1"
        async with http.get(f"{router.base}/status") as resp:
            states = {e["provider"]: e for e in (await resp.json())["endpoints"]}
        async with http.get(f"{router.base}/metrics") as resp:
            metrics = await resp.text()
    assert states["p0"]["state"] == "ejected" and states["p0"]["lastFailure"] == "auth"
    assert len(revoked.requests) == 1  # out of rotation after the first refusal
    assert 'outcome="auth"' in metrics
    assert "refused the router's key provider=p0" in router.output()


async def test_7_with_no_other_candidate_the_client_gets_503_not_401(tmp_path: Path) -> None:
    revoked = await started(lambda n, req: Reply(response(403, b'{"error": "forbidden"}')))
    async with router_process(route(revoked), tmp_path) as router, aiohttp.ClientSession() as http:
        status, headers, body = await post(http, router.base)
    assert status == 503 and "retry-after" in {k.lower() for k in headers}
    assert orjson.loads(body)["error"]["code"] == "upstream_unavailable"


async def test_12_our_503_names_no_upstream_address_or_errno(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    async with router_process(route(closed), tmp_path) as router, aiohttp.ClientSession() as http:
        status, headers, body = await post(http, router.base)
    assert status == 503
    text = body.decode() + str(headers)
    assert "127.0.0.1" not in text and "Errno" not in text and "refused" not in text
    assert "could not connect to the upstream" in text
    assert headers["x-modelroute-attempt-log"].startswith("p0/local/m=connect-failure")


async def test_3_an_endless_trailer_after_a_chunked_body_gets_431(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    async with router_process(route(upstream), tmp_path) as router:
        before = router.rss_kib()
        async with connect(router.port) as (reader, writer):
            body = orjson.dumps(CHAT)
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"%x\r\n%b\r\n0\r\nX-Trailer: " % (len(body), body)
            )
            for _ in range(16):
                writer.write(b"t" * (1024 * 1024))
                await writer.drain()
            status, _ = await read_head(reader)
        assert status == 431
        assert router.rss_kib() - before < 8 * 1024
    assert not upstream.requests


async def test_3_an_upstream_with_an_endless_trailer_is_a_failed_attempt(tmp_path: Path) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    body = chat_json("never complete")
    endless = head + b"%x\r\n%b\r\n0\r\nX-T: " % (len(body), body) + b"t" * (16 * 1024 * 1024)
    broken = await started(lambda n, req: Reply(endless, then="stall"))
    good = await started(lambda n, req: Reply(response(200, chat_json("whole"))))
    async with router_process(route(broken, good), tmp_path) as router:
        before = router.rss_kib()
        async with aiohttp.ClientSession() as http:
            status, headers, _ = await post(http, router.base)
        assert router.rss_kib() - before < 8 * 1024
    assert status == 200 and headers["x-modelroute-provider"] == "p1"


async def test_12_request_lines_of_other_http_versions_get_505(tmp_path: Path) -> None:
    upstream = await started(lambda n, req: Reply(response(200, chat_json("x"))))
    async with router_process(route(upstream), tmp_path) as router:
        for version in (b"HTTP/2.0", b"HTTP/0.9"):  # (1.2 is malformed to httptools: 400)
            async with connect(router.port) as (reader, writer):
                raw = request_bytes(body=orjson.dumps(CHAT)).replace(b"HTTP/1.1", version, 1)
                writer.write(raw)
                status, _ = await read_head(reader)
                assert status == 505, version
    assert not upstream.requests


async def test_1_a_probe_of_a_large_model_list_passes(tmp_path: Path) -> None:
    models = orjson.dumps(
        {
            "object": "list",
            "data": [{"id": f"model-{i:06d}", "object": "model"} for i in range(20000)],
        }
    )
    assert len(models) > 700 * 1024

    def script(n: int, request: bytes) -> Reply:
        if request.startswith(b"GET "):
            return Reply(response(200, models))
        return Reply(response(200, chat_json("x")))

    upstream = await started(script)
    check = {"interval": "200ms", "timeout": "1s", "unhealthyThreshold": 1}
    doc = route(upstream, resilience={"healthCheck": check})
    async with router_process(doc, tmp_path) as router, aiohttp.ClientSession() as http:
        await asyncio.sleep(1.0)  # several probes
        async with http.get(f"{router.base}/status") as resp:
            endpoint = (await resp.json())["endpoints"][0]
    probes = [r for r in upstream.requests if r.startswith(b"GET /v1/models ")]
    assert len(probes) >= 3
    assert endpoint["state"] == "healthy" and not endpoint["probesFailing"]
