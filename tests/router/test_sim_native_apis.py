"""The simulator's native Messages and Responses APIs, driven by the official SDKs.

``anthropic.AsyncAnthropic`` and ``openai.AsyncOpenAI(...).responses`` talk to
the simulator over real HTTP on loopback, streaming and not, with tools, and
its faults must surface as the SDKs' own exception classes — as they would
against Anthropic or OpenAI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import orjson
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from modelroute.router.sim import SimServer
from tests.router.conftest import SimFactory

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer"},
    },
    "required": ["city"],
}
CLAUDE_TOOL: Any = {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}
OPENAI_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather",
    "parameters": WEATHER_SCHEMA,
    "strict": False,
}
HELLO: Any = [{"role": "user", "content": "Hello there"}]
ANSWER = "tok0 tok1 tok2 tok3 tok4"


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    made: list[Any] = []
    yield made
    for client in made:
        await client.close()


@pytest.fixture
def claude(clients: list[Any]) -> Any:
    def make(sim: SimServer, api_key: str = "x") -> AsyncAnthropic:
        client = AsyncAnthropic(
            base_url=sim.url.removesuffix("/v1"), api_key=api_key, max_retries=0, timeout=10
        )
        clients.append(client)
        return client

    return make


@pytest.fixture
def gpt(clients: list[Any]) -> Any:
    def make(sim: SimServer, api_key: str = "x") -> AsyncOpenAI:
        client = AsyncOpenAI(base_url=sim.url, api_key=api_key, max_retries=0, timeout=10)
        clients.append(client)
        return client

    return make


def plain(items: list[Any]) -> list[dict[str, Any]]:
    """SDK models as dicts, without what the stream helpers add (``parsed``, ``parsed_output``)."""
    dropped = ("parsed", "parsed_output", "parsed_arguments")
    return [
        {
            key: [{k: v for k, v in p.items() if k not in dropped} for p in value]
            if key == "content" and isinstance(value, list)
            else value
            for key, value in item.to_dict().items()
            if key not in dropped
        }
        for item in items
    ]


# --- Anthropic Messages ---------------------------------------------------------


async def test_messages_whole_and_streamed_agree(make_sim: SimFactory, claude: Any) -> None:
    sim = await make_sim(tokens=5, token_delay_ms=1)
    client = claude(sim)
    whole = await client.messages.create(model="claude-test", max_tokens=100, messages=HELLO)
    assert whole.id.startswith("msg_") and whole.model == "claude-test"
    assert [(b.type, b.text) for b in whole.content if b.type == "text"] == [("text", ANSWER)]
    assert whole.stop_reason == "end_turn" and whole.usage.output_tokens == 5

    names = []
    async with client.messages.stream(
        model="claude-test", max_tokens=100, messages=HELLO
    ) as stream:
        async for event in stream:
            names.append(event.type)
        streamed = await stream.get_final_message()
    assert plain(streamed.content) == plain(whole.content) and streamed.stop_reason == "end_turn"
    assert streamed.usage.input_tokens == whole.usage.input_tokens > 0
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names.count("content_block_start") == names.count("content_block_stop") == 1

    counted = await client.messages.count_tokens(model="claude-test", messages=HELLO)
    assert counted.input_tokens == whole.usage.input_tokens
    assert sim.stats.by_path == {"/v1/messages": 2, "/v1/messages/count_tokens": 1}


async def test_max_tokens_cuts_the_answer(make_sim: SimFactory, claude: Any) -> None:
    client = claude(await make_sim(tokens=5))
    whole = await client.messages.create(model="m", max_tokens=2, messages=HELLO)
    assert whole.content[0].text == "tok0 tok1" and whole.stop_reason == "max_tokens"
    async with client.messages.stream(model="m", max_tokens=2, messages=HELLO) as stream:
        assert (await stream.get_final_message()).stop_reason == "max_tokens"


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_tool_round_trip(make_sim: SimFactory, claude: Any, streaming: bool) -> None:
    client = claude(await make_sim(tokens=5))
    ask: dict[str, Any] = {
        "model": "claude-test",
        "max_tokens": 200,
        "tools": [CLAUDE_TOOL],
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    if streaming:
        async with client.messages.stream(**ask, tool_choice={"type": "any"}) as stream:
            called = await stream.get_final_message()
    else:
        called = await client.messages.create(**ask, tool_choice={"type": "any"})
    assert called.stop_reason == "tool_use"
    [use] = [block for block in called.content if block.type == "tool_use"]
    assert use.name == "get_weather"
    assert use.input == {"city": "sim", "unit": "celsius", "days": 1}

    result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
    follow_up = [
        *ask["messages"],
        {"role": "assistant", "content": called.content},
        {"role": "user", "content": [result]},
    ]
    answer = await client.messages.create(**{**ask, "messages": follow_up})
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"
    assert answer.usage.input_tokens > called.usage.input_tokens


async def test_thinking_comes_first(make_sim: SimFactory, claude: Any) -> None:
    client = claude(await make_sim(tokens=8))
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    whole = await client.messages.create(
        model="m", max_tokens=100, messages=HELLO, thinking=thinking
    )
    assert [b.type for b in whole.content] == ["thinking", "text"]
    assert whole.content[0].thinking == "think0 think1 think2 think3"
    async with client.messages.stream(
        model="m", max_tokens=100, messages=HELLO, thinking=thinking
    ) as stream:
        assert plain((await stream.get_final_message()).content) == plain(whole.content)


async def test_prompt_cache_hits_show_as_cache_reads(make_sim: SimFactory, claude: Any) -> None:
    client = claude(await make_sim(prefix_cache_ttl=60))
    long: Any = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 400}]
    first = await client.messages.create(model="m", max_tokens=10, messages=long)
    again = await client.messages.create(model="m", max_tokens=10, messages=long)
    assert first.usage.cache_read_input_tokens == 0 and again.usage.cache_read_input_tokens
    assert (
        first.usage.input_tokens == again.usage.input_tokens + again.usage.cache_read_input_tokens
    )


@pytest.mark.parametrize(
    ("behaviour", "error", "kind"),
    [
        ({"fail_rate": 1.0, "fail_status": 529}, anthropic.InternalServerError, "overloaded_error"),
        (
            {"fail_rate": 1.0, "fail_status": 429, "retry_after": 3},
            anthropic.RateLimitError,
            "rate_limit_error",
        ),
        ({"fail_rate": 1.0, "fail_status": 500}, anthropic.InternalServerError, "api_error"),
        ({"api_key": "right"}, anthropic.AuthenticationError, "authentication_error"),
        ({"context_window": 10}, anthropic.BadRequestError, "invalid_request_error"),
    ],
)
async def test_faults_raise_the_sdks_exceptions(
    make_sim: SimFactory, claude: Any, behaviour: dict[str, Any], error: type[Exception], kind: str
) -> None:
    client = claude(await make_sim(**behaviour), api_key="wrong")
    with pytest.raises(error) as caught:
        await client.messages.create(model="m", max_tokens=10, messages=HELLO)
    assert isinstance(caught.value, anthropic.APIStatusError)
    assert caught.value.body["error"]["type"] == kind  # type: ignore[index]
    if "retry_after" in behaviour:
        assert caught.value.response.headers["retry-after"] == "3"


async def test_a_request_chat_cannot_carry_is_a_400_naming_it(
    make_sim: SimFactory, claude: Any
) -> None:
    client = claude(await make_sim())
    document: Any = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    }
    with pytest.raises(anthropic.BadRequestError, match="document"):
        await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": [document]}]
        )
    with pytest.raises(anthropic.BadRequestError, match="web_search"):
        await client.messages.create(
            model="m",
            max_tokens=10,
            messages=HELLO,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )


async def test_stream_faults(make_sim: SimFactory, claude: Any) -> None:
    sim = await make_sim(stream_error_before_content=True)
    client = claude(sim)
    with pytest.raises(anthropic.APIStatusError, match="simulated upstream error"):
        async with client.messages.stream(model="m", max_tokens=10, messages=HELLO) as stream:
            await stream.get_final_message()
    sim.behaviour.update({"stream_error_before_content": False, "die_after_tokens": 2})
    with pytest.raises(httpx2.RemoteProtocolError):  # as the SDK meets a connection cut short
        async with client.messages.stream(model="m", max_tokens=10, messages=HELLO) as stream:
            await stream.get_final_message()
    assert sim.stats.aborted == 1


# --- OpenAI Responses -----------------------------------------------------------


async def test_responses_whole_and_streamed_agree(make_sim: SimFactory, gpt: Any) -> None:
    sim = await make_sim(tokens=5, token_delay_ms=1)
    client = gpt(sim)
    whole = await client.responses.create(model="gpt-test", input="Hello", instructions="Be terse.")
    assert whole.id.startswith("resp_") and whole.status == "completed"
    assert whole.output_text == ANSWER and whole.instructions == "Be terse."
    assert whole.usage is not None and whole.usage.output_tokens == 5

    sequence = []
    async with client.responses.stream(
        model="gpt-test", input="Hello", instructions="Be terse."
    ) as stream:
        async for event in stream:
            sequence.append(event.sequence_number)
        streamed = await stream.get_final_response()
    assert streamed.output_text == ANSWER and streamed.usage == whole.usage
    assert sequence == list(range(len(sequence)))
    assert plain((await client.responses.retrieve(streamed.id)).output) == plain(streamed.output)


async def test_max_output_tokens_makes_an_incomplete_response(
    make_sim: SimFactory, gpt: Any
) -> None:
    client = gpt(await make_sim(tokens=5))
    whole = await client.responses.create(model="m", input="Hello", max_output_tokens=2)
    assert whole.status == "incomplete" and whole.output_text == "tok0 tok1"
    assert whole.incomplete_details is not None
    assert whole.incomplete_details.reason == "max_output_tokens"
    events = [
        e
        async for e in await client.responses.create(
            model="m", input="Hello", max_output_tokens=2, stream=True
        )
    ]
    assert events[-1].type == "response.incomplete"


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_tool_round_trip_through_previous_response_id(
    make_sim: SimFactory, gpt: Any, streaming: bool
) -> None:
    client = gpt(await make_sim(tokens=5))
    ask: dict[str, Any] = {"model": "gpt-test", "tools": [OPENAI_TOOL]}
    if streaming:
        async with client.responses.stream(
            **ask, input="Weather in Paris?", tool_choice="required"
        ) as stream:
            called = await stream.get_final_response()
    else:
        called = await client.responses.create(
            **ask, input="Weather in Paris?", tool_choice="required"
        )
    [call] = [item for item in called.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"city": "sim", "unit": "celsius", "days": 1}

    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    answer = await client.responses.create(**ask, input=[output], previous_response_id=called.id)
    assert answer.output_text == ANSWER and answer.previous_response_id == called.id
    assert answer.usage is not None and called.usage is not None
    assert answer.usage.input_tokens > called.usage.input_tokens  # it saw the conversation


async def test_stored_responses_are_retrieved_deleted_or_not_kept(
    make_sim: SimFactory, gpt: Any, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    client = gpt(sim)
    kept = await client.responses.create(model="m", input="Hello")
    assert (await client.responses.retrieve(kept.id)).id == kept.id
    await client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError, match=kept.id):
        await client.responses.retrieve(kept.id)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="m", input="more", previous_response_id=kept.id)
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"

    unstored = await client.responses.create(model="m", input="Hello", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)
    await client.responses.create(model="m", input="Hello")
    assert len(sim.responses) == 1
    async with http.post(sim.url.removesuffix("/v1") + "/sim/reset") as reset:
        assert reset.status == 200
    assert len(sim.responses) == 0


async def test_reasoning_is_a_reasoning_item(make_sim: SimFactory, gpt: Any) -> None:
    client = gpt(await make_sim(tokens=8))
    whole = await client.responses.create(model="m", input="Hello", reasoning={"effort": "low"})
    reasoning = whole.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "think0 think1 think2 think3"
    assert whole.usage is not None and whole.usage.output_tokens_details.reasoning_tokens == 4


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ({"fail_rate": 1.0, "fail_status": 500}, openai.InternalServerError),
        ({"fail_rate": 1.0, "fail_status": 429}, openai.RateLimitError),
        ({"api_key": "right"}, openai.AuthenticationError),
    ],
)
async def test_responses_faults_raise_the_sdks_exceptions(
    make_sim: SimFactory, gpt: Any, behaviour: dict[str, Any], error: type[Exception]
) -> None:
    client = gpt(await make_sim(**behaviour), api_key="wrong")
    with pytest.raises(error):
        await client.responses.create(model="m", input="Hello")


async def test_responses_refuse_built_in_tools_by_name(make_sim: SimFactory, gpt: Any) -> None:
    client = gpt(await make_sim())
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="m", input="Hello", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0]" and "web_search" in caught.value.message


async def test_a_responses_stream_that_fails_ends_with_response_failed(
    make_sim: SimFactory, gpt: Any
) -> None:
    client = gpt(await make_sim(stream_error_before_content=True))
    events = [e async for e in await client.responses.create(model="m", input="Hello", stream=True)]
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    failed = events[-1].response
    assert failed.error is not None and failed.error.code == "server_error"


async def test_responses_routes_answer_405_for_other_methods(
    make_sim: SimFactory, gpt: Any
) -> None:
    client = gpt(await make_sim())
    with pytest.raises(openai.APIStatusError) as caught:
        await client.post("/responses/resp_1", cast_to=object, body={})
    assert caught.value.status_code == 405


# --- the chat route agrees ------------------------------------------------------


async def test_the_chat_route_calls_forced_tools_and_reasons(
    make_sim: SimFactory, gpt: Any
) -> None:
    client = gpt(await make_sim(tokens=8))
    tool: Any = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA},
    }
    called = await client.chat.completions.create(
        model="m", messages=HELLO, tools=[tool], tool_choice="required"
    )
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert choice.message.tool_calls[0].to_dict()["function"]["name"] == "get_weather"

    chunks = [
        c
        async for c in await client.chat.completions.create(
            model="m", messages=HELLO, reasoning_effort="low", stream=True
        )
    ]
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reasoning == "think0 think1 think2 think3" and text == "tok0 tok1 tok2 tok3"
