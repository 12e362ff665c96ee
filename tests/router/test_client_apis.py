"""Anthropic's and OpenAI's SDKs calling the router through the APIs it translates:
Messages and Responses, in front of OpenAI-compatible (chat completions) upstreams.

Real HTTP on loopback: SDK → router → simulated chat upstream. Routing, failover,
errors and their SDK exception classes, streams replayed by the SDKs' own
accumulators.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from modelroute.router.serve import RouterServer
from modelroute.router.sim import SimServer
from tests.router.conftest import RouterFactory, SimFactory, quiet_route

WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    for client in made:
        await client.close()


def claude(router: RouterServer, made: list[Any], key: str = "x") -> AsyncAnthropic:
    client = AsyncAnthropic(base_url=f"http://127.0.0.1:{router.port}", api_key=key, max_retries=0, timeout=10)
    made.append(client)
    return client


def gpt(router: RouterServer, made: list[Any], key: str = "x") -> AsyncOpenAI:
    client = AsyncOpenAI(base_url=router.url, api_key=key, max_retries=0, timeout=10)
    made.append(client)
    return client


async def one_sim_router(
    make_sim: SimFactory, make_router: RouterFactory, **behaviour: Any
) -> tuple[SimServer, RouterServer]:
    sim = await make_sim(**behaviour)
    router = await make_router(quiet_route({"deepseek": [("us-east-1", sim)]}))
    return sim, router


# --- Anthropic Messages --------------------------------------------------------------------


async def test_messages_through_a_chat_upstream(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    sim, router = await one_sim_router(make_sim, make_router, tokens=6)
    client = claude(router, clients)
    raw = await client.messages.with_raw_response.create(
        model="chat-fast",
        max_tokens=64,
        system="You are terse.",
        messages=[{"role": "user", "content": "Hello there"}],
    )
    message = await raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 6
    assert raw.headers["x-modelroute-provider"] == "deepseek"
    assert sim.stats.by_path.get("/v1/chat/completions") == 1
    sent = sim.stats.last_body
    assert sent is not None and sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["max_tokens"] == 64


async def test_messages_stream_replays_in_the_sdks_accumulator(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    _, router = await one_sim_router(make_sim, make_router, tokens=8)
    client = claude(router, clients)
    kinds: list[str] = []
    async with client.messages.stream(
        model="chat-fast", max_tokens=64, messages=[{"role": "user", "content": "Count"}]
    ) as stream:
        async for event in stream:
            kinds.append(event.type)
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "message_delta" in kinds
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 8
    assert final.content[0].type == "text" and final.content[0].text


async def test_messages_tools_round_trip(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    sim, router = await one_sim_router(make_sim, make_router)
    client = claude(router, clients)
    first = await client.messages.create(
        model="chat-fast",
        max_tokens=128,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input, dict)
    second = await client.messages.create(
        model="chat-fast",
        max_tokens=128,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    sent = sim.stats.last_body
    assert sent is not None
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": use.id, "content": "Sunny"}
    assert sent["messages"][-2]["tool_calls"][0]["id"] == use.id


async def test_messages_errors_raise_the_sdks_exception_classes(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    _, router = await one_sim_router(make_sim, make_router)
    client = claude(router, clients)
    hello = [{"role": "user", "content": "Hello"}]
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(model="no-such-model", max_tokens=8, messages=hello)  # type: ignore[arg-type]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.messages.create(
            model="chat-fast",
            max_tokens=8,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                        }
                    ],
                }
            ],
        )
    assert "document" in str(refused.value)
    limited_sim = await make_sim(fail_rate=1.0, fail_status=429, retry_after=7)
    limited = await make_router(quiet_route({"deepseek": [("us-east-1", limited_sim)]}))
    with pytest.raises(anthropic.RateLimitError) as rate:
        await claude(limited, clients).messages.create(model="chat-fast", max_tokens=8, messages=hello)  # type: ignore[arg-type]
    assert rate.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(rate.value.response.headers["retry-after"]) <= 7


async def test_messages_with_a_client_key_in_x_api_key(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any], tmp_path: Any
) -> None:
    sim = await make_sim()
    secrets = tmp_path / "secrets" / "clients"
    secrets.mkdir(parents=True)
    (secrets / "keys").write_text("sk-team-a\n")
    doc = quiet_route({"deepseek": [("us-east-1", sim)]})
    doc["spec"]["auth"] = {"keysSecretRef": {"name": "clients", "key": "keys"}}
    router = await make_router(doc)
    hello = [{"role": "user", "content": "Hello"}]
    answer = await claude(router, clients, key="sk-team-a").messages.create(
        model="chat-fast", max_tokens=8, messages=hello  # type: ignore[arg-type]
    )
    assert answer.content
    with pytest.raises(anthropic.AuthenticationError):
        await claude(router, clients, key="sk-wrong").messages.create(
            model="chat-fast", max_tokens=8, messages=hello  # type: ignore[arg-type]
        )


async def test_messages_fail_over_before_content_and_end_with_an_error_event_after(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    broken, healthy = await make_sim(fail_rate=1.0, fail_status=500), await make_sim(tokens=5)
    router = await make_router(
        quiet_route(
            {"first": [("us-east-1", broken)], "second": [("us-east-1", healthy)]},
            models={"chat-fast": [("first", "upstream-model"), ("second", "upstream-model")]},
        )
    )
    client = claude(router, clients)
    async with client.messages.stream(
        model="chat-fast", max_tokens=32, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "end_turn"
    cut = await make_sim(tokens=20, die_after_tokens=3)
    cut_router = await make_router(quiet_route({"deepseek": [("us-east-1", cut)]}))
    async with httpx.AsyncClient() as http, http.stream(
        "POST",
        f"{cut_router.url}/messages",
        json={"model": "chat-fast", "max_tokens": 32, "stream": True,
              "messages": [{"role": "user", "content": "Hi"}]},
    ) as response:
        assert response.status_code == 200
        text = (await response.aread()).decode()
    events = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "error"
    assert "message_stop" not in events  # never a silent, complete-looking end


async def test_count_tokens_is_answered_by_the_router(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    sim, router = await one_sim_router(make_sim, make_router)
    counted = await claude(router, clients).messages.count_tokens(
        model="chat-fast", messages=[{"role": "user", "content": "Hello there, how are you?"}]
    )
    assert 3 < counted.input_tokens < 30
    assert sim.stats.by_path.get("/v1/chat/completions", 0) == 0


# --- OpenAI Responses ----------------------------------------------------------------------


async def test_responses_through_a_chat_upstream(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    sim, router = await one_sim_router(make_sim, make_router, tokens=5)
    client = gpt(router, clients)
    response = await client.responses.create(
        model="chat-fast", instructions="Be brief.", input="Hello there", max_output_tokens=50
    )
    assert response.status == "completed" and response.output_text
    assert response.usage is not None and response.usage.output_tokens == 5
    sent = sim.stats.last_body
    assert sent is not None and sent["messages"][0]["role"] == "system"
    events = []
    async with client.responses.stream(model="chat-fast", input="Stream please") as stream:
        async for event in stream:
            events.append(event.type)
        final = await stream.get_final_response()
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "response.output_text.delta" in events and final.output_text


async def test_responses_tools_and_errors(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    _, router = await one_sim_router(make_sim, make_router)
    client = gpt(router, clients)
    tool: Any = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    response = await client.responses.create(
        model="chat-fast", input="Weather?", tools=[tool], tool_choice="required"
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    orjson.loads(calls[0].arguments)
    with pytest.raises(openai.BadRequestError) as stateful:
        await client.responses.create(
            model="chat-fast", input="And then?", previous_response_id="resp_123"
        )
    assert "previous_response_id" in str(stateful.value)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="no-such-model", input="Hi")


# --- providers that serve these APIs themselves (providers[].apis) --------------------------


def native_route(
    native: SimServer, chat: SimServer | None = None, apis: tuple[str, ...] = ("messages", "responses")
) -> dict[str, Any]:
    """Model chat-fast: a provider serving ``apis`` natively, then (optionally) a chat one."""
    endpoints = {"native": [("us-east-1", native)]}
    chain = [("native", "upstream-model")]
    if chat is not None:
        endpoints["plain"] = [("us-east-1", chat)]
        chain.append(("plain", "upstream-model"))
    doc = quiet_route(endpoints, models={"chat-fast": chain})
    doc["spec"]["providers"][0]["apis"] = list(apis)
    return doc


async def test_a_native_provider_gets_messages_as_they_are(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    native = await make_sim(tokens=6)
    router = await make_router(native_route(native))
    client = claude(router, clients)
    raw = await client.messages.with_raw_response.create(
        model="chat-fast",
        max_tokens=64,
        messages=[{"role": "user", "content": "Hello there"}],
        extra_headers={"anthropic-beta": "some-feature-2026-01-01"},
    )
    message = await raw.parse()
    assert message.content[0].type == "text" and message.usage.output_tokens == 6
    assert native.stats.by_path == {"/v1/messages": 1}
    sent = native.stats.last_body
    assert sent is not None and sent["model"] == "upstream-model" and "messages" in sent
    assert float(raw.headers["x-modelroute-cost-usd"]) > 0  # usage in Anthropic's words
    async with client.messages.stream(
        model="chat-fast", max_tokens=64, messages=[{"role": "user", "content": "Stream"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 6
    assert native.stats.by_path == {"/v1/messages": 2}


async def test_a_native_stream_cut_after_content_ends_with_an_error_event(
    make_sim: SimFactory, make_router: RouterFactory
) -> None:
    native = await make_sim(tokens=20, die_after_tokens=3)
    router = await make_router(native_route(native))
    for path, body in (
        ("/messages", {"model": "chat-fast", "max_tokens": 50, "stream": True,
                       "messages": [{"role": "user", "content": "Hi"}]}),
        ("/responses", {"model": "chat-fast", "stream": True, "input": "Hi"}),
    ):
        async with httpx.AsyncClient() as http, http.stream(
            "POST", f"{router.url}{path}", json=body
        ) as response:
            assert response.status_code == 200
            text = (await response.aread()).decode()
        kinds = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
        assert kinds[-1] == "error", (path, kinds)
        assert "message_stop" not in kinds and "response.completed" not in kinds


async def test_a_failing_native_provider_fails_over_to_a_translated_one(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    native, plain = await make_sim(fail_rate=1.0, fail_status=529), await make_sim(tokens=4)
    router = await make_router(native_route(native, plain))
    message = await claude(router, clients).messages.create(
        model="chat-fast", max_tokens=32, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].type == "text"
    assert native.stats.by_path.get("/v1/messages", 0) >= 1
    assert plain.stats.by_path == {"/v1/chat/completions": 1}


async def test_a_native_providers_error_reaches_the_client_as_it_sent_it(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    native = await make_sim(fail_rate=1.0, fail_status=429, retry_after=3)
    router = await make_router(native_route(native))
    with pytest.raises(anthropic.RateLimitError) as limited:
        await claude(router, clients).messages.create(
            model="chat-fast", max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
        )
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_provider_side_state_goes_only_to_a_native_responses_provider(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    native, plain = await make_sim(tokens=4), await make_sim(tokens=4)
    router = await make_router(native_route(native, plain, ("responses",)))
    client = gpt(router, clients)
    first = await client.responses.create(model="chat-fast", input="Remember: the code is 42.")
    follow = await client.responses.create(
        model="chat-fast", input="What was the code?", previous_response_id=first.id
    )
    assert follow.status == "completed"
    assert native.stats.by_path == {"/v1/responses": 2}
    assert plain.stats.by_path == {}
    # A chat request skips the provider that serves only Responses.
    answer = await client.chat.completions.create(
        model="chat-fast", messages=[{"role": "user", "content": "Hi"}]
    )
    assert answer.choices[0].message.content
    assert plain.stats.by_path == {"/v1/chat/completions": 1}


async def test_a_request_no_target_can_take_is_a_clear_400(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    anthropic_only = await make_sim()
    router = await make_router(native_route(anthropic_only, None, ("messages",)))
    with pytest.raises(openai.BadRequestError) as refused:
        await gpt(router, clients).chat.completions.create(
            model="chat-fast", messages=[{"role": "user", "content": "Hi"}]
        )
    assert refused.value.code == "unsupported_api"
    assert anthropic_only.stats.by_path == {}


async def test_a_native_messages_provider_gets_its_key_in_x_api_key(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NATIVE_KEY", "sk-upstream-native")
    native = await make_sim(tokens=3, api_key="sk-upstream-native")
    doc = native_route(native, None, ("messages",))
    doc["spec"]["providers"][0]["endpoints"][0]["apiKeyEnv"] = "NATIVE_KEY"
    router = await make_router(doc)
    message = await claude(router, clients, key="client-key-not-forwarded").messages.create(
        model="chat-fast", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.usage.output_tokens == 3
    headers = native.stats.last_headers
    assert headers is not None
    assert headers.get("x-api-key") == "sk-upstream-native"
    assert "authorization" not in {k.lower() for k in headers}
    assert headers.get("anthropic-version")  # the SDK's, passed on


async def test_stored_responses_are_read_and_deleted_where_they_live(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    first, second = await make_sim(fail_rate=1.0, fail_status=503), await make_sim(tokens=4)
    doc = quiet_route(
        {"a": [("us-east-1", first)], "b": [("us-east-1", second)]},
        models={"chat-fast": [("a", "upstream-model"), ("b", "upstream-model")]},
    )
    for provider in doc["spec"]["providers"]:
        provider["apis"] = ["chat", "responses"]
    router = await make_router(doc)
    client = gpt(router, clients)
    made = await client.responses.create(model="chat-fast", input="Keep this.")
    assert second.stats.by_path == {"/v1/responses": 1}  # a failed over to b
    first.behaviour.fail_rate = 0.0
    calls_at_first = dict(first.stats.by_path)
    again = await client.responses.retrieve(made.id)
    assert again.id == made.id and again.output_text == made.output_text
    # The follow-up is pinned to b, which holds the state, though a is first and healthy.
    follow = await client.responses.create(
        model="chat-fast", input="And now?", previous_response_id=made.id
    )
    assert follow.status == "completed"
    assert first.stats.by_path == calls_at_first
    await client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(made.id)


async def test_structured_output_through_both_apis(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    """The simulator answers a json_schema response_format with a document fitting the
    schema (as compatcanary's strict structured-output probe checks), through chat and
    through the Responses translation."""
    import jsonschema

    _, router = await one_sim_router(make_sim, make_router)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    client = gpt(router, clients)
    chat = await client.chat.completions.create(
        model="chat-fast",
        messages=[{"role": "user", "content": "Plan a trip"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "trip", "schema": schema, "strict": True},
        },
    )
    jsonschema.validate(orjson.loads(chat.choices[0].message.content or ""), schema)
    response = await client.responses.create(
        model="chat-fast",
        input="Plan a trip",
        text={"format": {"type": "json_schema", "name": "trip", "schema": schema, "strict": True}},
    )
    jsonschema.validate(orjson.loads(response.output_text), schema)


async def test_messages_images_and_the_max_tokens_stop_reason(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    sim, router = await one_sim_router(make_sim, make_router, tokens=50)
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    message = await claude(router, clients).messages.create(
        model="chat-fast",
        max_tokens=5,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": pixel}},
                    {"type": "text", "text": "What is this?"},
                ],
            }
        ],
    )
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 5
    sent = sim.stats.last_body
    assert sent is not None
    parts = sent["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}}
    assert parts[1] == {"type": "text", "text": "What is this?"}


async def test_responses_fail_over_before_the_first_delta_and_fail_after_it(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    broken, healthy = await make_sim(fail_rate=1.0, fail_status=500), await make_sim(tokens=5)
    router = await make_router(
        quiet_route(
            {"first": [("us-east-1", broken)], "second": [("us-east-1", healthy)]},
            models={"chat-fast": [("first", "upstream-model"), ("second", "upstream-model")]},
        )
    )
    client = gpt(router, clients)
    async with client.responses.stream(model="chat-fast", input="Hi") as stream:
        final = await stream.get_final_response()
    assert final.status == "completed" and final.output_text
    cut = await make_sim(tokens=20, die_after_tokens=3)
    cut_router = await make_router(quiet_route({"deepseek": [("us-east-1", cut)]}))
    kinds: list[str] = []
    async with gpt(cut_router, clients).responses.stream(model="chat-fast", input="Hi") as s:
        async for event in s:
            kinds.append(event.type)
            if event.type == "response.failed":
                assert event.response.status == "failed" and event.response.error is not None
    assert "response.output_text.delta" in kinds  # content arrived, then the failure
    assert kinds[-1] == "response.failed" and "response.completed" not in kinds


async def test_responses_input_tokens_are_counted_by_the_router(
    make_sim: SimFactory, make_router: RouterFactory, clients: list[Any]
) -> None:
    sim, router = await one_sim_router(make_sim, make_router)
    client = gpt(router, clients)
    counted = await client.responses.input_tokens.count(
        model="chat-fast", input="Hello there, how are you today?", instructions="Be brief."
    )
    assert counted.object == "response.input_tokens" and 5 < counted.input_tokens < 40
    with pytest.raises(openai.NotFoundError):
        await client.responses.input_tokens.count(model="no-such-model", input="Hi")
    assert sim.stats.by_path == {}
