"""The Anthropic Messages adapter, checked against the official SDKs' own types.

Requests are translated and the result validated as a chat request by the
``openai`` SDK's types; answers, stream events and errors are validated by the
``anthropic`` SDK's pydantic models, and streams are replayed through its own
accumulator (what ``client.messages.stream(...)`` runs).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, MessageCreateParams, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from hypothesis import HealthCheck, given, settings
from openai.types.chat import CompletionCreateParams
from pydantic import TypeAdapter

from modelroute.router.adapters import TranslationError
from modelroute.router.adapters.anthropic import (
    StreamTranslator,
    count_tokens,
    error_body,
    from_chat,
    from_openai_error,
    to_chat,
)
from tests.router.chatchunks import ChatStream, chat_streams, chunk, sse

EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)
CHAT_REQUEST: TypeAdapter[CompletionCreateParams] = TypeAdapter(CompletionCreateParams)
MESSAGES_REQUEST: TypeAdapter[MessageCreateParams] = TypeAdapter(MessageCreateParams)
PNG = "iVBORw0KGgo="
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def request(**fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Hello"}],
        **fields,
    }


def chat_of(payload: dict[str, Any]) -> dict[str, Any]:
    """to_chat, with the result checked as a chat request by the openai SDK's types."""
    chat = to_chat(payload)
    checked = CHAT_REQUEST.validate_python(chat)
    list(checked["messages"])  # Iterable fields validate lazily
    return chat


# --- requests -------------------------------------------------------------------


def test_a_plain_request_maps_field_by_field() -> None:
    payload = request(
        system=[{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Be kind."}],
        stop_sequences=["END"],
        temperature=0.3,
        top_p=0.9,
        top_k=40,
        metadata={"user_id": "u-1"},
        stream=True,
    )
    MESSAGES_REQUEST.validate_python(payload)
    assert chat_of(payload) == {
        "model": "claude-test",
        "messages": [
            {"role": "system", "content": "Be terse.\n\nBe kind."},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 100,
        "stop": ["END"],
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_images_become_image_url_parts() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]
    chat = chat_of(request(messages=[{"role": "user", "content": content}]))
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        }
    ]


def test_a_tool_round_trip_maps_onto_tool_calls_and_tool_messages() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "two calls", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "rain"},
                        {"type": "text", "text": "cold"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                    ],
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "text", "text": "Summarise.", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ]
    payload = request(
        messages=messages,
        tools=[WEATHER, {**WEATHER, "name": "strict_one", "strict": True}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    MESSAGES_REQUEST.validate_python(payload)
    chat = chat_of(payload)
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "rain\ncold"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "text", "text": "Summarise."},
            ],
        },
    ]
    parameters = WEATHER["input_schema"]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": parameters,
                "description": "Weather in a city",
            },
        },
        {
            "type": "function",
            "function": {
                "name": "strict_one",
                "parameters": parameters,
                "description": "Weather in a city",
                "strict": True,
            },
        },
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    assert chat_of(request(tools=[WEATHER], tool_choice=choice))["tool_choice"] == expected


@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 8000}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 32000}}, "high"),
        ({"thinking": {"type": "disabled"}}, None),
        ({"thinking": {"type": "adaptive"}}, None),
        ({"output_config": {"effort": "xhigh"}}, "xhigh"),
        (
            {
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "output_config": {"effort": "high"},
            },
            "high",
        ),
    ],
)
def test_thinking_maps_to_reasoning_effort(fields: dict[str, Any], effort: str | None) -> None:
    assert chat_of(request(**fields)).get("reasoning_effort") == effort


def test_an_output_schema_becomes_a_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    chat = chat_of(request(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_hints_are_dropped() -> None:
    payload = request(
        cache_control={"type": "ephemeral"},
        service_tier="auto",
        speed="fast",
        system=[{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
    )
    assert chat_of(payload) == chat_of(request(system="S"))


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {
                                    "type": "base64",
                                    "media_type": "application/pdf",
                                    "data": "AA",
                                },
                            }
                        ],
                    }
                ]
            },
            "messages.0.content.0",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "s"}]}]},
            "messages.0.content.0",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "container_upload", "file_id": "f"}]}
                ]
            },
            "messages.0.content.0",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "file", "file_id": "file_1"}}
                        ],
                    }
                ]
            },
            "messages.0.content.0.source",
        ),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0"),
        ({"tools": [WEATHER, {"type": "bash_20250124", "name": "bash"}]}, "tools.1"),
        ({"container": "c"}, "container"),
        ({"mcp_servers": []}, "mcp_servers"),
        ({"inference_geo": "eu"}, "inference_geo"),
        ({"thinking": {"type": "between_tools"}}, "thinking.type"),
        ({"output_config": {"format": {"type": "regex"}}}, "output_config.format"),
        ({"frobnicate": True}, "frobnicate"),
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice"),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s"}]},
                ]
            },
            "messages.1.content.0",
        ),
    ],
)
def test_what_chat_cannot_carry_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        to_chat(request(**fields))
    error = caught.value
    assert error.param == param and error.status == 400
    body = ErrorResponse.model_validate(orjson.loads(error_body(error.status, error.message)))
    assert body.error.type == "invalid_request_error" and param.split(".")[0] in body.error.message


def test_count_tokens_estimates_the_translated_prompt() -> None:
    small = count_tokens({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    big = count_tokens(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hello world " * 200}],
            "tools": [WEATHER],
        }
    )
    assert 0 < small["input_tokens"] < 20 < 500 < big["input_tokens"] < 800
    with pytest.raises(TranslationError):
        count_tokens({"model": "m", "messages": [], "tools": [{"type": "web_search_20250305"}]})


# --- answers --------------------------------------------------------------------


def completion(
    message: dict[str, Any], finish: str | None = "stop", **choice: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "upstream",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
        },
    }


def test_a_whole_answer_becomes_a_message() -> None:
    said = {
        "role": "assistant",
        "reasoning_content": "Let me think.",
        "content": "Here you go.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"a": 1}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "g", "arguments": "not json"},
            },
        ],
    }
    answer = Message.model_validate(from_chat(completion(said, "tool_calls"), "claude-test"))
    assert answer.id.startswith("msg_") and answer.model == "claude-test"
    assert [block.type for block in answer.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert answer.model_dump(exclude_none=True)["content"][1:] == [
        {"type": "text", "text": "Here you go."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
    ]
    assert answer.stop_reason == "tool_use"
    usage = answer.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (36, 64, 20)


@pytest.mark.parametrize(
    ("finish", "extra", "reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("tool_calls", {}, "tool_use", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),  # vLLM names the match
        ("stop", {"stop_reason": 128001}, "end_turn", None),  # a stop token id: a natural end
        (None, {}, "end_turn", None),
    ],
)
def test_stop_reasons(
    finish: str | None, extra: dict[str, Any], reason: str, sequence: str | None
) -> None:
    answer = Message.model_validate(from_chat(completion({"content": "x"}, finish, **extra), "m"))
    assert (answer.stop_reason, answer.stop_sequence) == (reason, sequence)


def test_tool_calls_are_tool_use_even_when_the_upstream_says_stop() -> None:
    said = {
        "content": None,
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    assert from_chat(completion(said, "stop"), "m")["stop_reason"] == "tool_use"


def test_a_refusal_is_text_with_stop_reason_refusal() -> None:
    answer = Message.model_validate(from_chat(completion({"content": None, "refusal": "No."}), "m"))
    assert answer.to_dict()["content"] == [{"type": "text", "text": "No."}]
    assert answer.stop_reason == "refusal"


def test_an_answer_without_usage_or_choices_still_validates() -> None:
    answer = Message.model_validate(from_chat({"choices": []}, "m"))
    assert answer.content == [] and answer.usage.input_tokens == 0


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "invalid_request_error"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_bodies_by_status(status: int, kind: str) -> None:
    body = ErrorResponse.model_validate(orjson.loads(error_body(status, "went wrong")))
    assert (body.type, body.error.type, body.error.message) == ("error", kind, "went wrong")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}',
            "Rate limit reached",
        ),
        (b'{"error": "overloaded"}', "overloaded"),
        (b'{"message": "bad gateway"}', "bad gateway"),
        (b"<html>502</html>", "upstream answered 429"),
        (b"", "upstream answered 429"),
    ],
)
def test_openai_error_bodies_are_reshaped(body: bytes, message: str) -> None:
    reshaped = ErrorResponse.model_validate(orjson.loads(from_openai_error(429, body)))
    assert (reshaped.error.type, reshaped.error.message) == ("rate_limit_error", message)


# --- streams --------------------------------------------------------------------


def replay(data: bytes) -> tuple[list[dict[str, Any]], Any]:
    """Check an Anthropic event stream strictly; the SDK's accumulated message, or None.

    Exactly one message_start first (or only an error); blocks started with consecutive indices,
    one open at a time, deltas of the open block's kind, each block stopped;
    then (unless the stream failed) one message_delta with usage and a stop
    reason, and message_stop last. An ``error`` event may end it anywhere
    after the open block was stopped.
    """
    events = sse(data)
    assert events and events[0][0] in ("message_start", "error")  # an error may come first
    kinds = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "tool_use"}
    started: list[str] = []
    open_block: int | None = None
    snapshot: Any = None
    buffers: dict[int, bytes] = {}
    seen_delta = False
    for position, (name, data_) in enumerate(events):
        assert data_["type"] == name
        if name == "error":
            assert position == len(events) - 1 and open_block is None
            assert set(data_) == {"type", "error"}
            ErrorResponse.model_validate(data_)
            return [d for _, d in events], None
        event = EVENTS.validate_python(data_)
        assert name != "message_start" or position == 0
        if name == "content_block_start":
            assert open_block is None and data_["index"] == len(started) and not seen_delta
            open_block = data_["index"]
            started.append(data_["content_block"]["type"])
        elif name == "content_block_delta":
            assert data_["index"] == open_block
            assert open_block is not None
            assert kinds[data_["delta"]["type"]] == started[open_block]
        elif name == "content_block_stop":
            assert data_["index"] == open_block
            open_block = None
        elif name == "message_delta":
            assert open_block is None and not seen_delta
            assert data_["delta"]["stop_reason"] is not None and "output_tokens" in data_["usage"]
            seen_delta = True
        elif name == "message_stop":
            assert seen_delta and position == len(events) - 1
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    assert events[-1][0] == "message_stop"
    Message.model_validate(snapshot.to_dict())
    return [d for _, d in events], snapshot


def aggregate(content: list[dict[str, Any]]) -> tuple[str, str, list[tuple[str, Any]]]:
    thinking = "".join(b["thinking"] for b in content if b["type"] == "thinking")
    text = "".join(b["text"] for b in content if b["type"] == "text")
    tools = [(b["name"], b["input"]) for b in content if b["type"] == "tool_use"]
    return thinking, text, tools


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chat_streams())
def test_any_chat_stream_translates_into_a_valid_stream_that_matches_the_whole_answer(
    stream: ChatStream,
) -> None:
    translator = StreamTranslator("claude-test")
    data = b"".join(translator.feed(c) for c in stream.chunks) + translator.finish()
    assert translator.feed(chunk({"content": "late"})) == b"" and translator.finish() == b""
    _, snapshot = replay(data)
    whole = from_chat(stream.completion, "claude-test")
    streamed = snapshot.to_dict()
    assert aggregate(streamed["content"]) == aggregate(whole["content"])
    ids = [b["id"] for b in streamed["content"] if b["type"] == "tool_use"]
    given_ids = [c["id"] for c in stream.completion["choices"][0]["message"].get("tool_calls", [])]
    assert all(i == g for i, g in zip(ids, given_ids, strict=True) if g is not None)
    assert (streamed["stop_reason"], streamed["stop_sequence"]) == (
        whole["stop_reason"],
        whole["stop_sequence"],
    )
    if "usage" in stream.completion:
        assert streamed["usage"] == whole["usage"]
    else:
        assert streamed["usage"]["output_tokens"] == 0


@settings(max_examples=100, deadline=None)
@given(chat_streams())
def test_a_stream_failing_anywhere_ends_with_a_valid_error_event(stream: ChatStream) -> None:
    translator = StreamTranslator("claude-test")
    cut = len(stream.chunks) // 2
    data = b"".join(translator.feed(c) for c in stream.chunks[:cut])
    data += translator.error("upstream went away", "server_error")
    assert translator.finish() == b""
    events, _ = replay(data)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream went away"},
    }


def test_message_start_carries_known_input_tokens_and_the_final_counts_come_last() -> None:
    translator = StreamTranslator("claude-test", input_tokens=42)
    data = translator.feed(chunk({"content": "hi"}, "stop"))
    usage = {
        "prompt_tokens": 50,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 10},
    }
    data += translator.feed({**chunk(), "usage": usage}) + translator.finish()
    events, snapshot = replay(data)
    assert events[0]["message"]["usage"] == {"input_tokens": 42, "output_tokens": 0}
    assert events[-2]["usage"] == {
        "input_tokens": 40,
        "output_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10,
    }
    assert snapshot.usage.input_tokens == 40


def test_an_upstream_error_event_becomes_an_anthropic_error_event() -> None:
    translator = StreamTranslator("m")
    data = translator.feed(chunk({"content": "partial"}))
    data += translator.feed({"error": {"message": "Rate limited", "type": "rate_limit_exceeded"}})
    events, _ = replay(data)
    assert events[-1]["error"] == {"type": "rate_limit_error", "message": "Rate limited"}


def test_a_tool_call_whose_name_comes_late_starts_when_it_is_known() -> None:
    translator = StreamTranslator("m")
    data = translator.feed(
        chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"arguments": '{"a"'}}]})
    )
    assert b"content_block_start" not in data
    data += translator.feed(
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ": 1}"}}]})
    )
    data += translator.feed(chunk({}, "tool_calls")) + translator.finish()
    _, snapshot = replay(data)
    assert snapshot.to_dict()["content"] == [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}
    ]


def test_interleaved_tool_call_arguments_end_the_stream_with_an_error() -> None:
    translator = StreamTranslator("m")
    first = {"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x": '}}
    second = {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}
    data = translator.feed(chunk({"tool_calls": [first]})) + translator.feed(
        chunk({"tool_calls": [second]})
    )
    data += translator.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}))
    events, _ = replay(data)
    assert events[-1]["type"] == "error" and "interleaved" in events[-1]["error"]["message"]
    assert translator.finish() == b""
