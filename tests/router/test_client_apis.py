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
