"""The simulated upstream, through real HTTP on loopback."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

import modelroute
from modelroute.router import sim as sim_module
from modelroute.router.sim import SimBehaviour, SimServer, start_sim

CHAT = {"model": "chat-fast", "messages": [{"role": "user", "content": "x" * 40}]}
STREAM = {**CHAT, "stream": True}
ROOT = Path(modelroute.__file__).resolve().parent.parent




async def eventually(check: Callable[[], bool]) -> None:
    """Wait until the simulator's stats satisfy check; they are plain counters, so poll."""
    async with asyncio.timeout(2):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def events(response: aiohttp.ClientResponse, into: list[Any] | None = None) -> list[Any]:
    """The SSE data payloads, parsed ("[DONE]" kept as the string)."""
    found = [] if into is None else into
    async for line in response.content:
        if line.startswith(b"data: "):
            data = line[6:].strip()
            found.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return found


def content_of(chunks: list[Any]) -> list[str]:
    return [
        c["choices"][0]["delta"]["content"]
        for c in chunks
        if isinstance(c, dict)
        and c.get("choices")
        and "role" not in c["choices"][0]["delta"]
        and "content" in c["choices"][0]["delta"]
    ]


def error_shape(body: Any, code: str | None) -> None:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"] and error["param"] is None
    assert error["code"] == code


def test_public_api_sorted() -> None:
    assert sim_module.__all__ == sorted(sim_module.__all__)
    assert all(hasattr(sim_module, name) for name in sim_module.__all__)


async def test_chat_shape_and_usage(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.update({"tokens": 4, "name": "eu-a", "region": "eu-west-1"})
    async with http.post(f"{sim.url}/chat/completions", json=CHAT, headers={"x-t": "1"}) as r:
        assert r.status == 200
        assert r.headers["x-sim-name"] == "eu-a"
        assert r.headers["x-sim-region"] == "eu-west-1"
        body = await r.json()
    assert body["object"] == "chat.completion"
    assert body["id"] and isinstance(body["created"], int)
    assert body["model"] == "chat-fast"  # echoed, not one of behaviour.models
    (choice,) = body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "tok0 tok1 tok2 tok3",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    # 40 ASCII bytes at 4 a token, 4 for the message, 3 for priming the reply
    assert body["usage"] == {"prompt_tokens": 17, "completion_tokens": 4, "total_tokens": 21}
    stats = sim.stats
    assert (stats.requests, stats.completed, stats.errors, stats.in_flight) == (1, 1, 0, 0)
    assert stats.by_path == {"/v1/chat/completions": 1}
    assert stats.last_headers["x-t"] == "1"
    assert stats.last_body == CHAT


async def test_chat_stream_chunks_and_done(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.tokens = 5
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        chunks = await events(r)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content_of(chunks[1:]) == ["tok0", " tok1", " tok2", " tok3", " tok4"]
    assert len(chunks) == 1 + 5 + 1 + 1
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1] == "[DONE]"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks[:-1])
    assert len({c["id"] for c in chunks[:-1]}) == 1
    assert not any("usage" in c for c in chunks[:-1])
    assert (sim.stats.tokens_sent, sim.stats.completed) == (5, 1)


async def test_stream_include_usage(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.tokens = 3
    body = {**STREAM, "stream_options": {"include_usage": True}}
    async with http.post(f"{sim.url}/chat/completions", json=body) as r:
        chunks = await events(r)
    assert chunks[-1] == "[DONE]"
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 17, "completion_tokens": 3, "total_tokens": 20}
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"


async def test_latency_and_token_delay(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.update({"latency_ms": 40, "tokens": 3, "token_delay_ms": 20})
    start = time.monotonic()
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as r:
        first_byte = time.monotonic() - start
        chunks = await events(r)
    total = time.monotonic() - start
    assert len(content_of(chunks)) == 3
    assert first_byte >= 0.04
    assert total >= 0.04 + 3 * 0.02
    start = time.monotonic()
    async with http.post(f"{sim.url}/chat/completions", json=CHAT) as r:
        await r.read()
    assert time.monotonic() - start >= 0.04 + 3 * 0.02


async def test_completions_embeddings_models(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.update({"tokens": 2, "models": ["a", "b"]})
    prompt = {"model": "m", "prompt": "y" * 8}
    async with http.post(f"{sim.url}/completions", json=prompt) as r:
        body = await r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "tok0 tok1"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    async with http.post(f"{sim.url}/completions", json={**prompt, "stream": True}) as r:
        chunks = await events(r)
    assert [c["choices"][0]["text"] for c in chunks[:-1]] == ["tok0", " tok1", ""]
    assert chunks[-1] == "[DONE]"

    embed = {"model": "e", "input": ["hello", "world", "hello"]}
    async with http.post(f"{sim.url}/embeddings", json=embed) as r:
        body = await r.json()
    vectors = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert vectors[0] == vectors[2] != vectors[1]
    assert all(isinstance(x, float) and -1 <= x <= 1 for x in vectors[0])
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}

    async with http.get(f"{sim.url}/models") as r:
        body = await r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["a", "b"]
    assert sim.stats.by_path == {"/v1/completions": 2, "/v1/embeddings": 1, "/v1/models": 1}


async def test_fail_rate_429_with_retry_after(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.update({"fail_rate": 1.0, "fail_status": 429, "retry_after": 1.2})
    for body in (CHAT, STREAM, {"model": "e", "input": "x"}):
        path = "embeddings" if "input" in body else "chat/completions"
        async with http.post(f"{sim.url}/{path}", json=body) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "2"
            assert r.headers["x-sim-name"] == "sim"
            error_shape(await r.json(), None)
    assert (sim.stats.completed, sim.stats.errors, sim.stats.tokens_sent) == (3, 3, 0)

    sim.behaviour.update({"fail_status": 500})
    async with http.post(f"{sim.url}/chat/completions", json=CHAT) as r:
        assert r.status == 500
        assert "Retry-After" not in r.headers
    sim.behaviour.fail_rate = 0.0
    async with http.post(f"{sim.url}/chat/completions", json=CHAT) as r:
        assert r.status == 200


async def test_api_key(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.api_key = "sk-sim"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        async with http.post(f"{sim.url}/chat/completions", json=CHAT, headers=headers) as r:
            assert r.status == 401
            error_shape(await r.json(), "invalid_api_key")
    ok = {"Authorization": "Bearer sk-sim"}
    async with http.post(f"{sim.url}/chat/completions", json=CHAT, headers=ok) as r:
        assert r.status == 200


async def test_malformed_requests(sim: SimServer, http: aiohttp.ClientSession) -> None:
    for data in (b"{not json", b"[1, 2]", orjson.dumps({"messages": []})):
        async with http.post(f"{sim.url}/chat/completions", data=data) as r:
            assert r.status == 400
            error_shape(await r.json(), None)
    async with http.get(f"{sim.url}/nope") as r:
        assert r.status == 404
        error_shape(await r.json(), "not_found")


async def test_die_after_tokens_streaming(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.update({"tokens": 10, "die_after_tokens": 3, "token_delay_ms": 1})
    chunks: list[Any] = []
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await events(r, chunks)
    assert content_of(chunks) == ["tok0", " tok1", " tok2"]
    assert "[DONE]" not in chunks
    stats = sim.stats
    assert (stats.tokens_sent, stats.aborted, stats.completed, stats.cancelled) == (3, 1, 0, 0)
    await eventually(lambda: sim.stats.in_flight == 0)


async def test_die_after_tokens_unpaced_stream(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.update({"tokens": 10, "die_after_tokens": 4})
    chunks: list[Any] = []
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as r:
        with pytest.raises(aiohttp.ClientPayloadError):
            await events(r, chunks)
    assert len(content_of(chunks)) == 4
    assert "[DONE]" not in chunks


async def test_die_and_refuse_without_answer(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.die_after_tokens = 0
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.post(f"{sim.url}/chat/completions", json=CHAT)
    sim.behaviour.update({"die_after_tokens": None, "refuse": True})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.post(f"{sim.url}/chat/completions", json=CHAT)
    assert (sim.stats.aborted, sim.stats.completed, sim.stats.requests) == (2, 0, 2)


async def test_stream_error_before_content(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.stream_error_before_content = True
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as r:
        assert r.status == 200
        chunks = await events(r)
    assert len(chunks) == 2
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    error_shape(chunks[1], None)
    assert (sim.stats.completed, sim.stats.errors, sim.stats.tokens_sent) == (1, 1, 0)


@pytest.mark.parametrize("waiting", [{"stall": True}, {"latency_ms": 60_000}])
async def test_disconnect_while_waiting_is_cancelled(
    sim: SimServer, http: aiohttp.ClientSession, waiting: dict[str, Any]
) -> None:
    sim.behaviour.update(waiting)
    with pytest.raises(asyncio.TimeoutError):
        await http.post(
            f"{sim.url}/chat/completions", json=STREAM, timeout=aiohttp.ClientTimeout(total=0.1)
        )
    await eventually(lambda: sim.stats.cancelled == 1)
    assert sim.stats.last_body == STREAM
    assert (sim.stats.in_flight, sim.stats.completed, sim.stats.aborted) == (0, 0, 0)


async def test_disconnect_mid_stream_is_cancelled(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    sim.behaviour.update({"tokens": 1000, "token_delay_ms": 5})
    r = await http.post(f"{sim.url}/chat/completions", json=STREAM)
    for _ in range(6):  # role chunk + a couple of tokens, with their blank lines
        await r.content.readline()
    r.close()  # drops the connection
    await eventually(lambda: sim.stats.cancelled == 1)
    sent = sim.stats.tokens_sent
    assert 2 <= sent < 1000
    await asyncio.sleep(0.03)
    assert sim.stats.tokens_sent == sent  # nothing more written after the disconnect
    assert (sim.stats.in_flight, sim.stats.completed) == (0, 0)


async def test_admin_endpoints(sim: SimServer, http: aiohttp.ClientSession) -> None:
    admin = sim.url.removesuffix("/v1") + "/sim"
    sim.behaviour.api_key = "k"  # the admin endpoints ignore the behaviour
    async with http.post(f"{admin}/behaviour", json={"tokens": 2, "api_key": None}) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer["tokens"] == 2 and answer["api_key"] is None
    assert sim.behaviour.tokens == 2
    async with http.post(f"{sim.url}/chat/completions", json=CHAT) as r:
        assert (await r.json())["usage"]["completion_tokens"] == 2

    for bad in ({"tokens": "3", "name": "x"}, {"nope": 1}, {"fail_rate": 2}, {"stall": 1}):
        async with http.post(f"{admin}/behaviour", json=bad) as r:
            assert r.status == 400
            error_shape(await r.json(), None)
    async with http.post(f"{admin}/behaviour", data=b"{") as r:
        assert r.status == 400
    assert (sim.behaviour.tokens, sim.behaviour.name) == (2, "sim")  # all or nothing

    async with http.get(f"{admin}/stats") as r:
        stats = await r.json()
    assert stats["requests"] == 1 and stats["completed"] == 1
    assert stats["by_path"] == {"/v1/chat/completions": 1}
    async with http.post(f"{admin}/reset") as r:
        assert (await r.json())["requests"] == 0
    assert sim.stats.requests == 0 and sim.stats.by_path == {} and sim.stats.last_body is None


def test_behaviour_validation() -> None:
    with pytest.raises(ValueError, match="fail_rate"):
        SimBehaviour(fail_rate=1.5)
    with pytest.raises(ValueError, match="tokens"):
        SimBehaviour(tokens=-1)
    behaviour = SimBehaviour()
    with pytest.raises(ValueError, match="unknown"):
        behaviour.update({"latency": 5})
    behaviour.update({"latency_ms": 5, "retry_after": 1})
    assert (behaviour.latency_ms, behaviour.retry_after) == (5, 1)


async def test_close_then_restart_on_same_port(http: aiohttp.ClientSession) -> None:
    first = await start_sim(behaviour=SimBehaviour(name="first"))
    port = first.port
    assert port != 0 and first.url == f"http://127.0.0.1:{port}/v1"
    async with http.get(f"{first.url}/models") as r:
        assert r.headers["x-sim-name"] == "first"
    await first.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await http.get(f"{first.url}/models")

    second = await start_sim(port=port, behaviour=SimBehaviour(name="second"))
    try:
        async with http.get(f"{second.url}/models") as r:
            assert r.headers["x-sim-name"] == "second"
        await second.close()
        await second.start()  # the same object revives on its port
        assert second.port == port
        async with http.get(f"{second.url}/models") as r:
            assert r.status == 200
    finally:
        await second.close()


async def test_close_cuts_requests_in_flight(sim: SimServer, http: aiohttp.ClientSession) -> None:
    sim.behaviour.stall = True
    pending = asyncio.ensure_future(http.post(f"{sim.url}/chat/completions", json=CHAT))
    await eventually(lambda: sim.stats.in_flight == 1)
    start = time.monotonic()
    await sim.close()
    assert time.monotonic() - start < 0.5
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pending
    assert (sim.stats.aborted, sim.stats.cancelled, sim.stats.in_flight) == (1, 0, 0)


async def test_run_sim_serves_until_sigterm(http: aiohttp.ClientSession) -> None:
    # Not PYTHONPATH: the repo root on the path at startup lets operator/ shadow the stdlib.
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from modelroute.router.sim import SimBehaviour, run_sim\n"
        "run_sim('127.0.0.1', 0, SimBehaviour(name='cli'))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        url = line.split()[-1]
        async with http.get(f"{url}/models") as r:
            assert r.headers["x-sim-name"] == "cli"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
