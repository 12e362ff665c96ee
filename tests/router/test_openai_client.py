"""The official ``openai`` SDK as the client: what applications actually run.

Every call goes through real HTTP on loopback: AsyncOpenAI → router → simulated
upstream. Errors must arrive in OpenAI's shape so that the SDK raises the same
exception classes it raises against OpenAI itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from modelroute.router.serve import RouterServer
from modelroute.router.sim import SimServer
from tests.router.conftest import RouterFactory, SimFactory, eventually, route_doc
from tests.router.conftest import quiet_route as route

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there, router"}]


ClientFactory = Callable[..., AsyncOpenAI]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """AsyncOpenAI clients pointed at a router, without SDK retries; closed at the end."""
    clients: list[AsyncOpenAI] = []

    def make(router: RouterServer, api_key: str = "x") -> AsyncOpenAI:
        client = AsyncOpenAI(base_url=router.url, api_key=api_key, max_retries=0, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def routed(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> AsyncOpenAI:
    """A client → router → one healthy sim (5 tokens per answer)."""
    sim = await make_sim(tokens=5)
    router = await make_router(
        route(
            {"deepseek": [("us-east-1", sim)]},
            models={
                "chat-fast": [("deepseek", "upstream-model")],
                "embed-small": [("deepseek", "upstream-embed")],
            },
        )
    )
    return make_client(router)


async def test_chat_non_streaming(routed: AsyncOpenAI) -> None:
    raw = await routed.chat.completions.with_raw_response.create(model="chat-fast", messages=HELLO)
    completion = raw.parse()
    assert raw.headers["x-modelroute-provider"] == "deepseek"
    assert raw.headers["x-modelroute-model"] == "upstream-model"
    assert completion.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "upstream-model"  # the upstream model that answered
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5


async def test_chat_streaming_without_usage(routed: AsyncOpenAI) -> None:
    stream = await routed.chat.completions.create(model="chat-fast", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 tok3 tok4"
    assert chunks[-1].choices[0].finish_reason == "stop"
    # The router asks the upstream for usage (to count cost) but the client did not.
    assert [c for c in chunks if c.usage is not None] == []
    assert all(c.choices for c in chunks)


async def test_chat_streaming_with_usage(routed: AsyncOpenAI) -> None:
    stream = await routed.chat.completions.create(
        model="chat-fast",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 tok3 tok4"
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1]
    assert with_usage[0].choices == []
    assert with_usage[0].usage is not None
    assert with_usage[0].usage.completion_tokens == 5


async def test_completions(routed: AsyncOpenAI) -> None:
    completion = await routed.completions.create(model="chat-fast", prompt="Once upon a time")
    assert completion.choices[0].text == "tok0 tok1 tok2 tok3 tok4"
    assert completion.model == "upstream-model"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5


async def test_completions_streaming(routed: AsyncOpenAI) -> None:
    stream = await routed.completions.create(
        model="chat-fast", prompt="Once upon a time", stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "tok0 tok1 tok2 tok3 tok4"
    assert [c for c in chunks if c.usage is not None] == []


async def test_embeddings(routed: AsyncOpenAI) -> None:
    result = await routed.embeddings.create(model="embed-small", input=["alpha", "beta"])
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 8 for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.model == "upstream-embed"


async def test_models_list(routed: AsyncOpenAI) -> None:
    models = [model async for model in routed.models.list()]
    # The client-facing names, not the upstream's.
    assert [model.id for model in models] == ["chat-fast", "embed-small"]
    assert all(model.object == "model" for model in models)
    # What each is, in an extra member the SDK keeps: its chain, upstream names in order.
    assert models[0].model_extra == {"modelroute": {"targets": ["deepseek/upstream-model"]}}


async def test_models_retrieve(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(tokens=1)
    slashed = "deepseek-ai/DeepSeek-V4-Flash"  # the SDK sends it as deepseek-ai%2FDeepSeek-V4-Flash
    models = {"chat-fast": [("deepseek", "m")], slashed: [("deepseek", "m")]}
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}, models=models))
    client = make_client(router)
    for name in ("chat-fast", slashed):
        model = await client.models.retrieve(name)
        assert (model.id, model.object, model.created, model.owned_by) == (
            name,
            "model",
            0,
            "modelroute",
        )
    # Without the /v1 prefix, and with the slash sent as it is.
    no_prefix = AsyncOpenAI(base_url=router.url.removesuffix("/v1"), api_key="x", max_retries=0)
    async with no_prefix:
        raw = await no_prefix.get(f"/models/{slashed}", cast_to=httpx.Response)
        assert raw.json()["id"] == slashed
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("gpt-nope")
    assert caught.value.code == "model_not_found"
    assert caught.value.body == {
        "message": "The model 'gpt-nope' does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert caught.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("chat-fast/extra")


async def test_unknown_model_is_not_found(routed: AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await routed.chat.completions.create(model="gpt-nope", messages=HELLO)
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.param is None  # as OpenAI answers
    assert "gpt-nope" in caught.value.message


async def test_rejected_body_is_bad_request(routed: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await routed.chat.completions.create(model="chat-fast", messages=[])
    assert caught.value.status_code == 400
    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == "messages"


async def test_every_upstream_failing_relays_the_last_answer(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> None:
    sims = [await make_sim(fail_rate=1.0, fail_status=500) for _ in range(2)]
    router = await make_router(
        route(
            {"deepseek": [("us-east-1", sims[0]), ("eu-west-1", sims[1])]},
            resilience={"retries": {"attempts": 1}},
        )
    )
    client = make_client(router)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="chat-fast", messages=HELLO)
    assert caught.value.status_code == 500  # the upstream's, not our 503
    assert caught.value.message.endswith("simulated failure (500)")
    headers = caught.value.response.headers
    assert headers["x-modelroute-attempts"] == "2"
    assert headers["x-modelroute-attempt-log"].count("=500") == 2
    assert [sim.stats.by_path.get("/v1/chat/completions") for sim in sims] == [1, 1]


async def test_every_upstream_rate_limited_is_rate_limit_error_with_its_retry_after(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(fail_rate=1.0, fail_status=429, retry_after=1)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    client = make_client(router).with_options(max_retries=1)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="chat-fast", messages=HELLO)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"  # the upstream's own
    # The SDK waited what the upstream asked before its one retry, then gave up.
    assert time.monotonic() - started >= 0.9
    assert (sim.stats.by_path.get("/v1/chat/completions") or 0) >= 2  # (the router may
    # also wait out so short a Retry-After once itself: see retries.sameTargetWait)


async def test_streaming_with_every_upstream_failing(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(fail_rate=1.0, fail_status=500)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    client = make_client(router)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="chat-fast", messages=HELLO, stream=True)
    assert caught.value.status_code == 500


async def test_error_event_before_content_that_no_one_else_answers(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(stream_error_before_content=True)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    client = make_client(router)
    # The upstream's error event as it sent it, in a 200 stream: the SDK raises on it
    # while iterating, exactly as it would talking to that upstream directly.
    stream = await client.chat.completions.create(model="chat-fast", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError) as caught:
        async for _ in stream:
            pass
    assert "simulated upstream error mid-stream" in caught.value.message


async def test_no_upstream_answering_is_our_own_503(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(refuse=True)  # the connection is dropped: nothing answered
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    client = make_client(router)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="chat-fast", messages=HELLO)
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_unavailable"
    assert int(caught.value.response.headers["retry-after"]) >= 1


@pytest.fixture
async def guarded_sim(make_sim: SimFactory) -> SimServer:
    return await make_sim(tokens=3)


@pytest.fixture
async def guarded(
    guarded_sim: SimServer, make_router: RouterFactory, tmp_path: Path
) -> RouterServer:
    """A router in front of ``guarded_sim`` that accepts only the keys in client-keys/keys."""
    keys = tmp_path / "secrets" / "client-keys" / "keys"
    keys.parent.mkdir(parents=True)
    keys.write_text("# team A\nsk-team-a\n\nsk-team-b\n")
    auth = {"keysSecretRef": {"name": "client-keys", "key": "keys"}}
    return await make_router(route({"deepseek": [("us-east-1", guarded_sim)]}, auth=auth))


@pytest.mark.parametrize("key", ["sk-wrong", "sk-team-", "sk-team-aa", "# team A"])
async def test_wrong_client_key_is_authentication_error(
    guarded: RouterServer, make_client: ClientFactory, key: str
) -> None:
    client = make_client(guarded, api_key=key)
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.chat.completions.create(model="chat-fast", messages=HELLO)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    with pytest.raises(openai.AuthenticationError):
        await client.models.retrieve("chat-fast")


@pytest.mark.parametrize("key", ["sk-team-a", "sk-team-b"])
async def test_right_client_key_works(
    guarded: RouterServer, make_client: ClientFactory, key: str
) -> None:
    client = make_client(guarded, api_key=key)
    completion = await client.chat.completions.create(model="chat-fast", messages=HELLO)
    assert completion.choices[0].message.content == "tok0 tok1 tok2"
    stream = await client.chat.completions.create(model="chat-fast", messages=HELLO, stream=True)
    chunks: list[Any] = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "tok0 tok1 tok2"
    assert [m.id async for m in client.models.list()] == ["chat-fast"]
    assert (await client.models.retrieve("chat-fast")).id == "chat-fast"


async def test_client_key_is_not_sent_upstream(
    guarded: RouterServer, guarded_sim: SimServer, make_client: ClientFactory
) -> None:
    client = make_client(guarded, api_key="sk-team-a")
    await client.chat.completions.create(model="chat-fast", messages=HELLO)
    # The endpoint has no key of its own: nothing may stand in the client's place.
    assert "authorization" not in guarded_sim.stats.last_headers


async def test_sdk_timeout_cancels_the_upstream(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(latency_ms=5000)
    router = await make_router(route({"deepseek": [("us-east-1", sim)]}))
    client = make_client(router).with_options(timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="chat-fast", messages=HELLO)
    # The application gave up: the upstream must stop generating for it.
    await eventually(lambda: sim.stats.cancelled == 1, timeout=1.0)


async def test_usage_the_client_did_not_ask_for_is_in_no_chunk(routed: AsyncOpenAI) -> None:
    """The router asks the upstream for usage; the upstream then puts "usage":null in
    every chunk (as OpenAI does). Without include_usage the client sees none of it."""
    body: dict[str, Any] = {"model": "chat-fast", "messages": HELLO, "stream": True}
    async with httpx.AsyncClient(base_url=str(routed.base_url)) as http:
        plain = await http.post("/chat/completions", json=body)
        asked = await http.post(
            "/chat/completions", json={**body, "stream_options": {"include_usage": True}}
        )
    assert plain.status_code == asked.status_code == 200
    assert b'"usage"' not in plain.content
    chunks = [line for line in asked.content.split(b"\n\n") if line.startswith(b"data: {")]
    assert all(c.endswith(b',"usage":null}') for c in chunks[:-1])  # passed on as sent
    assert b'"usage":{' in chunks[-1]


async def test_the_upstreams_request_id_reaches_the_sdk_and_ours_is_kept_apart(
    make_router: RouterFactory, make_client: ClientFactory
) -> None:
    from tests.router.scripted import Reply, ScriptedUpstream, chat_json, response

    def script(n: int, request: bytes) -> Reply:
        headers = {"Content-Type": "application/json"}
        if n == 0:
            headers["X-Request-Id"] = "req_upstream_123"
        return Reply(response(200, chat_json("hi"), headers=headers))

    upstream = await ScriptedUpstream(script).start()
    try:
        doc = route_doc({"p": [("us-east-1", upstream)]})  # type: ignore[list-item]
        router = await make_router(doc)
        client = make_client(router)
        raw = await client.chat.completions.with_raw_response.create(
            model="chat-fast", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-request-id"] == "req_upstream_123"
        assert raw.parse()._request_id == "req_upstream_123"
        ours = raw.headers["x-modelroute-request-id"]
        assert ours.startswith("mr-") and f"x-request-id: {ours}".encode() in upstream.requests[0]
        # an upstream that sends no id: the router's own is both
        raw = await client.chat.completions.with_raw_response.create(
            model="chat-fast", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-request-id"] == raw.headers["x-modelroute-request-id"]
    finally:
        await upstream.close()


async def test_a_tiered_model_lists_its_tiers(
    make_sim: SimFactory, make_router: RouterFactory, make_client: ClientFactory
) -> None:
    sim = await make_sim(tokens=1)
    doc = route(
        {"deepseek": [("us-east-1", sim)]},
        models={"small": [("deepseek", "s")], "large": [("deepseek", "l")]},
    )
    doc["spec"]["models"].append(
        {"name": "auto", "tiers": {"economy": "small", "standard": "large"}}
    )
    client = make_client(await make_router(doc))
    auto = await client.models.retrieve("auto")
    assert auto.model_extra == {"modelroute": {"tiers": {"economy": "small", "standard": "large"}}}
