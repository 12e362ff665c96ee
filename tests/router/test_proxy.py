"""The proxied OpenAI API through real HTTP on loopback, against simulated upstreams."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from modelroute.router.stream import StreamState, relay_block
from tests.router.conftest import RouterFactory, SimFactory, route_doc

CHAT = {"model": "chat-fast", "messages": [{"role": "user", "content": "Hello there"}]}


async def sse(response: aiohttp.ClientResponse) -> list[Any]:
    out: list[Any] = []
    async for line in response.content:
        if line.startswith(b"data: "):
            data = line[6:].strip()
            out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


async def test_chat_non_streaming(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(tokens=5)
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
        body = await resp.json()
        assert resp.status == 200
        assert resp.headers["x-modelroute-provider"] == "deepseek"
        assert resp.headers["x-modelroute-region"] == "us-east-1"
        assert resp.headers["x-modelroute-model"] == "upstream-model"
        assert resp.headers["x-modelroute-attempts"] == "1"
        assert float(resp.headers["x-modelroute-overhead-ms"]) >= 0
        assert resp.headers["x-request-id"]
    assert body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] == 5
    # The upstream saw the client's body with only `model` rewritten.
    assert sim.stats.last_body == {**CHAT, "model": "upstream-model"}


async def test_chat_streaming_relays_chunks_and_hides_injected_usage(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(tokens=6)
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    async with http.post(f"{router.url}/chat/completions", json={**CHAT, "stream": True}) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert resp.headers["x-modelroute-provider"] == "deepseek"
        events = await sse(resp)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if e != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "tok0 tok1 tok2 tok3 tok4 tok5"
    # The router asked the upstream for usage (to count cost) but the client did not.
    assert sim.stats.last_body["stream_options"] == {"include_usage": True}
    assert all("usage" not in c or c["usage"] is None for c in chunks)
    assert all(c["choices"] for c in chunks)
    metrics = await (await http.get(f"http://127.0.0.1:{router.port}/metrics")).text()
    assert (
        'modelroute_tokens_total{direction="output",model="upstream-model",provider="deepseek"} 6.0'
        in metrics
    )


async def test_streaming_client_that_asks_for_usage_gets_it(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(tokens=3)
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    async with http.post(f"{router.url}/chat/completions", json=body) as resp:
        events = await sse(resp)
    usage_chunks = [e for e in events if isinstance(e, dict) and e.get("usage")]
    assert len(usage_chunks) == 1
    assert usage_chunks[0]["usage"]["completion_tokens"] == 3


async def test_completions_embeddings_and_models(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(tokens=4)
    doc = route_doc(
        {"qwen": [("us-east-1", sim)]},
        models={"chat-fast": [("qwen", "upstream-model")], "embed": [("qwen", "emb-v3")]},
    )
    router = await make_router(doc)
    async with http.post(
        f"{router.url}/completions", json={"model": "chat-fast", "prompt": "Say hi"}
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["object"] == "text_completion"
    async with http.post(
        f"{router.url}/embeddings", json={"model": "embed", "input": ["a", "b"]}
    ) as resp:
        assert resp.status == 200
        data = await resp.json()
        assert len(data["data"]) == 2
        assert resp.headers["x-modelroute-model"] == "emb-v3"
    async with http.get(f"{router.url}/models") as resp:
        assert resp.status == 200
        assert [m["id"] for m in (await resp.json())["data"]] == ["chat-fast", "embed"]
    # Clients whose base URL lacks /v1 are served too.
    async with http.post(f"http://127.0.0.1:{router.port}/chat/completions", json=CHAT) as resp:
        assert resp.status == 200


def _is_openai_error(
    body: Any, status_type: str, code: str | None, param: str | None = None
) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] == status_type
    assert error["code"] == code
    assert error["param"] == param


async def test_client_errors_in_openai_shape(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    url = f"{router.url}/chat/completions"
    cases: list[tuple[bytes, int, str | None, str | None]] = [
        (b"{not json", 400, None, None),
        (b"", 400, None, None),
        (b"[1, 2]", 400, None, None),
        # OpenAI's own param/code for each (see test_accept.py's table)
        (orjson.dumps({"messages": CHAT["messages"]}), 400, None, None),
        (orjson.dumps({"model": 7, "messages": CHAT["messages"]}), 400, "invalid_type", "model"),
        (orjson.dumps({"model": "chat-fast"}), 400, "missing_required_parameter", "messages"),
        (orjson.dumps({"model": "chat-fast", "messages": []}), 400, "empty_array", "messages"),
        (orjson.dumps({**CHAT, "model": "gpt-17"}), 404, "model_not_found", None),
    ]
    for body, status, code, param in cases:
        async with http.post(url, data=body, headers={"content-type": "application/json"}) as resp:
            assert resp.status == status, body
            _is_openai_error(await resp.json(), "invalid_request_error", code, param)
    assert sim.stats.requests == 0  # none of them reached the upstream
    async with http.post(
        f"{router.url}/embeddings", json={"model": "chat-fast", "input": "x", "stream": True}
    ) as resp:
        assert resp.status == 400
    async with http.get(f"{router.url}/nope") as resp:
        assert resp.status == 404
        _is_openai_error(await resp.json(), "invalid_request_error", "unknown_url")
    async with http.get(url) as resp:
        assert resp.status == 405
        assert resp.headers["allow"] == "POST"
    metrics = await (await http.get(f"http://127.0.0.1:{router.port}/metrics")).text()
    # Unknown model names never become label values.
    assert "gpt-17" not in metrics
    assert 'modelroute_requests_total{code="404",model="other"} 1.0' in metrics


async def test_every_upstream_failing_gives_the_last_upstream_answer(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    bad = await make_sim(fail_rate=1.0, fail_status=502)
    worse = await make_sim(fail_rate=1.0, fail_status=500)
    doc = route_doc({"deepseek": [("us-east-1", bad), ("eu-west-1", worse)]})
    router = await make_router(doc)
    async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
        # attempts: 2 (the default) allows three tries for two candidates: each
        # once, then the plan starts over at the top, where `bad` answers 502 again.
        assert resp.status == 502
        assert "retry-after" not in resp.headers  # none asked for; ours would be a guess
        assert resp.headers["x-modelroute-attempts"] == "3"
        assert resp.headers["x-modelroute-attempt-log"].count("=50") == 3
        assert (await resp.json())["error"]["message"] == "simulated failure (502)"
    assert bad.stats.requests == 2 and worse.stats.requests == 1


async def test_upstream_client_error_passes_through_without_failover(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    rejecting = await make_sim(fail_rate=1.0, fail_status=400)
    healthy = await make_sim()
    doc = route_doc({"deepseek": [("us-east-1", rejecting), ("eu-west-1", healthy)]})
    router = await make_router(doc)
    async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
        assert resp.status == 400
        assert resp.headers["x-modelroute-region"] == "us-east-1"
        assert (await resp.json())["error"]["message"]
    assert healthy.stats.requests == 0


async def test_own_region_first_then_other_regions_then_next_target(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    eu = await make_sim(name="eu")
    us = await make_sim(name="us")
    glm = await make_sim(name="glm")
    doc = route_doc(
        {"deepseek": [("eu-west-1", eu), ("us-east-1", us)], "glm": [("us-east-1", glm)]},
        models={"chat-fast": [("deepseek", "upstream-model"), ("glm", "glm-4")]},
        resilience={"retries": {"attempts": 3}},
    )
    router = await make_router(doc, region="us-east-1")
    async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
        assert resp.headers["x-sim-name"] == "us"
    us.behaviour.fail_rate = 1.0
    async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
        assert resp.status == 200
        assert resp.headers["x-sim-name"] == "eu"
        assert resp.headers["x-modelroute-region"] == "eu-west-1"
        assert resp.headers["x-modelroute-attempts"] == "2"
    eu.behaviour.fail_rate = 1.0
    async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
        assert resp.status == 200
        assert resp.headers["x-modelroute-provider"] == "glm"
        assert resp.headers["x-modelroute-model"] == "glm-4"
        assert resp.headers["x-modelroute-attempts"] == "3"
    assert glm.stats.last_body["model"] == "glm-4"


async def test_headers_cross_the_router_as_designed(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SIM_KEY", "sk-upstream")
    sim = await make_sim(api_key="sk-upstream")
    doc = route_doc({"deepseek": [("us-east-1", sim)]})
    doc["spec"]["providers"][0]["endpoints"][0]["apiKeyEnv"] = "SIM_KEY"
    router = await make_router(doc)
    headers = {
        "authorization": "Bearer sk-client",
        "x-request-id": "req-123",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-stainless-lang": "python",
        "x-custom-trace": "abc",
        "openai-organization": "org-client",
        "accept-encoding": "gzip",
        # credentials for other providers: never forwarded (allow-list, not deny-list)
        "x-api-key": "sk-ant-client",
        "api-key": "azure-client",
        "x-goog-api-key": "goog-client",
        "proxy-authorization": "Basic Y2xpZW50",
    }
    async with http.post(f"{router.url}/chat/completions", json=CHAT, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["x-request-id"] == "req-123"
    seen = sim.stats.last_headers
    assert seen["authorization"] == "Bearer sk-upstream"  # the client's key never leaves
    assert seen["traceparent"].startswith("00-0af7")
    assert seen["x-stainless-lang"] == "python"
    assert seen["x-request-id"] == "req-123"
    assert seen["accept-encoding"] == "identity"
    for dropped in (
        "x-custom-trace",
        "openai-organization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "proxy-authorization",
    ):
        assert dropped not in seen, dropped


async def test_unknown_body_fields_pass_through(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    body = {
        **CHAT,
        "temperature": 0.2,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "x_vendor": {"a": [1, 2]},
    }
    async with http.post(f"{router.url}/chat/completions", json=body) as resp:
        assert resp.status == 200
    assert sim.stats.last_body == {**body, "model": "upstream-model"}


async def test_large_bodies_are_edited_in_place_and_arrive_intact(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(tokens=2)
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    image = "data:image/png;base64," + "QUJD" * 100_000  # ~400 KB, over the in-place threshold
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": image}},
    ]
    body = {
        "model": "chat-fast",
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
    }
    async with http.post(f"{router.url}/chat/completions", json=body) as resp:
        assert resp.status == 200
    assert sim.stats.last_body == {**body, "model": "upstream-model"}
    async with http.post(f"{router.url}/chat/completions", json={**body, "stream": True}) as resp:
        events = await sse(resp)
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and e.get("usage") for e in events)
    assert sim.stats.last_body == {
        **body,
        "stream": True,
        "model": "upstream-model",
        "stream_options": {"include_usage": True},
    }


async def test_large_body_malformed_deep_inside_is_refused_by_the_upstream(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    # Large bodies are checked at their top level only; the upstream's own 400
    # for what is broken inside reaches the client, with who said so.
    sim = await make_sim()
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    image = "QUJD" * 100_000
    raw = (
        b'{"model": "chat-fast", "messages": [{"role": "user", "content": [{"type": tru}, '
        b'{"type": "image_url", "image_url": {"url": "' + image.encode() + b'"}}]}]}'
    )
    headers = {"content-type": "application/json"}
    async with http.post(f"{router.url}/chat/completions", data=raw, headers=headers) as resp:
        assert resp.status == 400
        assert resp.headers["x-modelroute-provider"] == "deepseek"
        assert (await resp.json())["error"]["message"]
    assert sim.stats.by_path.get("/v1/chat/completions") == 1


async def test_a_slow_streaming_client_gets_every_event_through_back_pressure(
    make_sim: SimFactory, make_router: RouterFactory, monkeypatch: Any
) -> None:
    # The upstream sends far faster than this client reads: the router must pause
    # reading the upstream while the client's buffer is full and resume after,
    # losing nothing and holding no unbounded buffer.
    import asyncio
    import socket

    from modelroute.router.http.client import UpstreamResponse

    pauses: list[int] = []
    original = UpstreamResponse.pause_reading

    def counting(self: UpstreamResponse) -> None:
        pauses.append(1)
        original(self)

    monkeypatch.setattr(UpstreamResponse, "pause_reading", counting)
    sim = await make_sim(tokens=40_000)  # megabytes: more than the kernel buffers hold
    router = await make_router(route_doc({"deepseek": [("us-east-1", sim)]}))
    body = orjson.dumps({**CHAT, "stream": True})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", router.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)
    )
    received = bytearray()
    async with asyncio.timeout(30):
        while True:
            data = await reader.read(2048)
            if not data:
                break
            received += data
            if len(received) < 200_000:
                await asyncio.sleep(0.001)  # read slowly for the first part
    writer.close()
    text = bytes(received)
    assert text.startswith(b"HTTP/1.1 200")
    assert text.count(b'"content":" tok') == 39_999  # every token after the first
    assert text.rstrip().endswith(b"0")  # the chunked body's end
    assert b"data: [DONE]" in text
    assert pauses  # the upstream was paused while the client lagged


async def test_hedges_spend_the_retry_budget(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    slow = await make_sim(name="slow", latency_ms=300)
    fast = await make_sim(name="fast")
    doc = route_doc(
        {"deepseek": [("us-east-1", slow), ("eu-west-1", fast)]},
        resilience={
            "hedging": {"enabled": True, "after": "50ms"},
            "retries": {"budgetPercent": 0, "minRetryConcurrency": 0},
            "healthCheck": {"enabled": False},
        },
    )
    router = await make_router(doc, region="us-east-1")
    async with http.post(f"{router.url}/chat/completions", json=CHAT) as resp:
        assert resp.status == 200
        assert resp.headers["x-sim-name"] == "slow"  # no budget: no hedge, the slow one answers
    assert fast.stats.requests == 0
    metrics = await (await http.get(f"http://127.0.0.1:{router.port}/metrics")).text()
    assert "modelroute_hedges_total 0.0" in metrics


def test_relay_drops_null_usage_only_when_the_router_asked_for_it() -> None:
    compact = b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n'
    spaced = b'data: {"choices": [{"delta": {"content": "\\",\\"usage\\":null"}}], "usage": null}\n\n'
    block = compact + spaced
    stripped = relay_block(block, StreamState(strip_usage=True))
    assert stripped == (
        b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
        b'data: {"choices": [{"delta": {"content": "\\",\\"usage\\":null"}}]}\n\n'
    )  # (an escaped "usage" inside a string is content, and kept)
    assert relay_block(block, StreamState(strip_usage=False)) == block


async def test_cors_is_off_by_default_and_answers_allowed_origins_when_on(
    make_sim: SimFactory, make_router: RouterFactory, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    doc = route_doc({"deepseek": [("us-east-1", sim)]})
    router = await make_router(doc)
    page = {"origin": "https://app.example.com"}
    preflight = {
        **page,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os, cookie",
    }
    url = f"{router.url}/chat/completions"
    async with http.options(url, headers=preflight) as resp:
        assert resp.status == 405 and "access-control-allow-origin" not in resp.headers
    async with http.post(url, json=CHAT, headers=page) as resp:
        assert resp.status == 200 and "access-control-allow-origin" not in resp.headers

    doc["spec"]["server"] = {"cors": {"allowedOrigins": ["https://app.example.com"]}}
    router = await make_router(doc)
    url = f"{router.url}/chat/completions"
    async with http.options(url, headers=preflight) as resp:
        assert resp.status == 204 and "content-length" not in resp.headers
        assert resp.headers["access-control-allow-origin"] == "https://app.example.com"
        assert resp.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
        # what an OpenAI client sends, not what it should not (cookies)
        assert resp.headers["access-control-allow-headers"] == (
            "authorization, content-type, x-stainless-os"
        )
        assert resp.headers["access-control-max-age"] == "600"
    async with http.post(url, json=CHAT, headers=page) as resp:
        assert resp.status == 200
        assert resp.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "x-request-id" in resp.headers["access-control-expose-headers"]
    async with http.post(url, json={**CHAT, "stream": True}, headers=page) as resp:
        assert resp.headers["access-control-allow-origin"] == "https://app.example.com"
    other = {"origin": "https://evil.example"}
    async with http.options(url, headers={**preflight, **other}) as resp:
        assert "access-control-allow-origin" not in resp.headers
    async with http.post(url, json=CHAT, headers=other) as resp:
        assert "access-control-allow-origin" not in resp.headers
    # preflights never reach the upstream (health probes may have: count chat calls only)
    assert sim.stats.by_path.get("/v1/chat/completions") == 4
