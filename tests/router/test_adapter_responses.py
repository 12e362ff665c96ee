"""The Responses adapter, checked against the ``openai`` SDK's own types.

Requests are translated and validated as chat requests; answers are validated
as ``Response`` objects; every stream event is validated as a
``ResponseStreamEvent`` and the stream replayed through the SDK's accumulator
(what ``client.responses.stream(...)`` runs).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from openai._types import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.chat import CompletionCreateParams
from openai.types.responses import Response, ResponseCreateParams, ResponseStreamEvent
from pydantic import TypeAdapter

from modelroute.router.adapters import TranslationError
from modelroute.router.adapters.responses import StreamTranslator, from_chat, to_chat
from tests.router.chatchunks import ChatStream, chat_streams, chunk, sse

EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
CHAT_REQUEST: TypeAdapter[CompletionCreateParams] = TypeAdapter(CompletionCreateParams)
RESPONSES_REQUEST: TypeAdapter[ResponseCreateParams] = TypeAdapter(ResponseCreateParams)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "input": "Hello", **fields}


def chat_of(payload: dict[str, Any]) -> dict[str, Any]:
    """to_chat, with the result checked as a chat request by the openai SDK's types."""
    RESPONSES_REQUEST.validate_python(payload)
    chat = to_chat(payload)
    list(CHAT_REQUEST.validate_python(chat)["messages"])  # Iterable fields validate lazily
    return chat


# --- requests -------------------------------------------------------------------


def test_a_plain_request_maps_field_by_field() -> None:
    payload = request(
        instructions="Be terse.",
        max_output_tokens=50,
        temperature=0.2,
        top_p=0.8,
        user="u-1",
        store=False,
        metadata={"k": "v"},
        reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_object"}, "verbosity": "low"},
        include=["reasoning.encrypted_content"],
        prompt_cache_key="conversation-7",
        stream=True,
    )
    assert chat_of(payload) == {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.8,
        "user": "u-1",
        "response_format": {"type": "json_object"},
        "verbosity": "low",
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_input_items_map_onto_messages_tool_calls_and_tool_messages() -> None:
    items = [
        {"role": "developer", "content": "Use tools."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather here?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"},
                {
                    "type": "input_file",
                    "file_data": "data:application/pdf;base64,AA",
                    "filename": "a.pdf",
                },
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {
            "type": "function_call",
            "call_id": "call_2",
            "name": "get_weather",
            "arguments": '{"city":"Rome"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [
                {"type": "input_text", "text": "rain"},
                {
                    "type": "input_image",
                    "image_url": "https://example.com/radar.png",
                    "detail": "auto",
                },
            ],
        },
        {"role": "user", "content": "Thanks"},
    ]
    chat = chat_of(
        request(input=items, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Use tools."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
                },
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,AA", "filename": "a.pdf"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/radar.png", "detail": "auto"},
                }
            ],
        },
        {"role": "user", "content": "Thanks"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        }
    ]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False


def test_a_named_function_tool_choice_and_a_json_schema_format() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    chat = chat_of(
        request(
            tools=[WEATHER],
            tool_choice={"type": "function", "name": "get_weather"},
            text={"format": {"type": "json_schema", "name": "x", "schema": schema, "strict": True}},
        )
    )
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": schema, "strict": True},
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tools": [WEATHER, {"type": "file_search", "vector_store_ids": ["vs"]}]}, "tools[1]"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}, "tool_choice"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"type": "web_search_call", "id": "ws", "status": "completed"}]}, "input[0]"),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "file_id": "f", "detail": "auto"}],
                    }
                ]
            },
            "input[0].content[0]",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
        ({"truncation": "auto"}, "truncation"),
        ({"top_logprobs": 5}, "top_logprobs"),
        ({"include": ["message.output_text.logprobs"]}, "include[0]"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"input": None}, "input"),
    ],
)
def test_what_chat_cannot_carry_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        to_chat(request(**fields))
    assert caught.value.param == param and caught.value.status == 400
    assert caught.value.body().startswith(b'{"error":{"message":')


def test_stateless_fields_set_to_nothing_are_fine() -> None:
    chat = chat_of(request(previous_response_id=None, background=False, truncation="disabled"))
    assert chat["messages"] == [{"role": "user", "content": "Hello"}]


# --- answers --------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str | None = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "upstream",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 5},
        },
    }


def test_a_whole_answer_becomes_a_response_echoing_the_request() -> None:
    said = {
        "role": "assistant",
        "reasoning_content": "Let me think.",
        "content": "Here you go.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    asked = request(tools=[WEATHER], instructions="Be terse.", temperature=0.5, metadata={"k": "v"})
    response = Response.model_validate(
        from_chat(completion(said, "tool_calls"), "gpt-test", request=asked)
    )
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.created_at == 1700000000 and response.model == "gpt-test"
    assert [item.type for item in response.output] == ["reasoning", "message", "function_call"]
    reasoning, _, call = (item.to_dict() for item in response.output)
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Let me think."}]
    assert response.output_text == "Here you go."
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert response.usage is not None and response.usage.to_dict() == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 0},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 120,
    }
    assert response.instructions == "Be terse." and response.temperature == 0.5
    assert response.metadata == {"k": "v"}
    assert [t.to_dict()["name"] for t in response.tools] == ["get_weather"]


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [
        ("stop", "completed", None),
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
        (None, "completed", None),
    ],
)
def test_finish_reasons(finish: str | None, status: str, reason: str | None) -> None:
    response = Response.model_validate(from_chat(completion({"content": "x"}, finish), "m"))
    assert response.status == status
    assert (response.incomplete_details.reason if response.incomplete_details else None) == reason
    assert response.output[0].to_dict()["status"] == ("incomplete" if reason else "completed")


def test_a_refusal_is_a_refusal_part() -> None:
    response = from_chat(completion({"content": None, "refusal": "No."}), "m")
    assert response["output"][0]["content"] == [{"type": "refusal", "refusal": "No."}]
    Response.model_validate(response)


# --- streams --------------------------------------------------------------------


def replay(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Check a Responses event stream strictly; the events and the final response.

    Sequence numbers count from 0; created and in_progress open it, one of
    completed, incomplete or failed ends it; output items are added with
    consecutive output indices, one open at a time, their content parts with
    consecutive content indices, deltas only into the open part, every
    ``.done`` repeating what the deltas built; the final response lists the
    items as their ``output_item.done`` events had them. The SDK's
    accumulator must accept the whole stream.
    """
    events = sse(data)
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] in ("response.completed", "response.incomplete", "response.failed")
    items: list[dict[str, Any]] = []
    open_item: dict[str, Any] | None = None
    part: dict[str, Any] | None = None
    built = ""
    for sequence, (name, payload) in enumerate(events):
        assert payload["type"] == name and payload["sequence_number"] == sequence
        state.handle_event(EVENTS.validate_python(payload))
        if name == "response.output_item.added":
            assert open_item is None and payload["output_index"] == len(items)
            open_item = {**payload["item"], "parts": 0}
            items.append(open_item)
        elif name == "response.content_part.added":
            assert open_item is not None and part is None
            assert (
                payload["item_id"] == open_item["id"]
                and payload["content_index"] == open_item["parts"]
            )
            part, built = payload["part"], ""
        elif name.endswith(".delta"):
            assert open_item is not None and payload["item_id"] == open_item["id"]
            assert payload["output_index"] == len(items) - 1
            if name == "response.function_call_arguments.delta":
                assert open_item["type"] == "function_call" and part is None
            else:
                assert part is not None and payload["content_index"] == open_item["parts"]
            built += payload["delta"]
        elif name in (
            "response.output_text.done",
            "response.reasoning_text.done",
            "response.refusal.done",
        ):
            assert part is not None
            assert payload.get("text", payload.get("refusal")) == built
        elif name == "response.content_part.done":
            assert (
                part is not None
                and payload["part"].get("text", payload["part"].get("refusal")) == built
            )
            part = None
            assert open_item is not None
            open_item["parts"] += 1
        elif name == "response.function_call_arguments.done":
            assert open_item is not None and payload["arguments"] == built
            built = ""
        elif name == "response.output_item.done":
            assert (
                open_item is not None and part is None and payload["item"]["id"] == open_item["id"]
            )
            items[-1] = payload["item"]
            open_item, built = None, ""
    final = events[-1][1]["response"]
    if names[-1] != "response.failed":
        assert open_item is None and final["output"] == items and final["usage"] is not None
    assert final["status"] == names[-1].removeprefix("response.")
    Response.model_validate(final)
    if names[-1] == "response.completed":
        assert state._completed_response is not None
    return [payload for _, payload in events], final


def aggregate(output: list[dict[str, Any]]) -> tuple[str, str, str, list[tuple[str, str]]]:
    def texts(kind: str) -> str:
        return "".join(
            p.get("text", p.get("refusal", ""))
            for item in output
            for p in item.get("content", [])
            if p["type"] == kind
        )

    calls = [(i["name"], i["arguments"]) for i in output if i["type"] == "function_call"]
    return texts("reasoning_text"), texts("output_text"), texts("refusal"), calls


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chat_streams())
def test_any_chat_stream_translates_into_a_valid_stream_that_matches_the_whole_answer(
    stream: ChatStream,
) -> None:
    asked = request(tools=[WEATHER])
    translator = StreamTranslator("gpt-test", request=asked)
    data = b"".join(translator.feed(c) for c in stream.chunks) + translator.finish()
    assert translator.feed(chunk({"content": "late"})) == b"" and translator.finish() == b""
    _, final = replay(data)
    assert translator.response == final
    whole = from_chat(stream.completion, "gpt-test", request=asked)
    assert aggregate(final["output"]) == aggregate(whole["output"])
    assert (final["status"], final["incomplete_details"]) == (
        whole["status"],
        whole["incomplete_details"],
    )
    assert final["usage"] == whole["usage"]
    given_ids = [c["id"] for c in stream.completion["choices"][0]["message"].get("tool_calls", [])]
    ids = [i["call_id"] for i in final["output"] if i["type"] == "function_call"]
    assert all(i == g for i, g in zip(ids, given_ids, strict=True) if g is not None)


@settings(max_examples=100, deadline=None)
@given(chat_streams())
def test_a_stream_failing_anywhere_ends_with_response_failed(stream: ChatStream) -> None:
    translator = StreamTranslator("gpt-test")
    cut = len(stream.chunks) // 2
    data = b"".join(translator.feed(c) for c in stream.chunks[:cut])
    data += translator.error("upstream went away")
    assert translator.finish() == b""
    events, final = replay(data)
    assert final["status"] == "failed"
    assert final["error"] == {"code": "server_error", "message": "upstream went away"}
    done = [e["item"]["id"] for e in events if e["type"] == "response.output_item.done"]
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    assert [item["id"] for item in final["output"]] == added and done == added[: len(done)]


def test_a_cut_answer_ends_with_response_incomplete() -> None:
    translator = StreamTranslator("m")
    data = translator.feed(chunk({"content": "partial"})) + translator.feed(chunk({}, "length"))
    data += translator.finish()
    events, final = replay(data)
    assert events[-1]["type"] == "response.incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete"


def test_interleaved_tool_call_arguments_fail_the_response() -> None:
    translator = StreamTranslator("m")
    first = {"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x": '}}
    second = {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}
    data = translator.feed(chunk({"tool_calls": [first]})) + translator.feed(
        chunk({"tool_calls": [second]})
    )
    data += translator.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}))
    _, final = replay(data)
    assert final["status"] == "failed" and "interleaved" in final["error"]["message"]


def test_an_upstream_error_event_fails_the_response() -> None:
    translator = StreamTranslator("m")
    data = translator.feed(chunk({"content": "partial"}))
    data += translator.feed({"error": {"message": "boom", "type": "server_error"}})
    _, final = replay(data)
    assert final["error"] == {"code": "server_error", "message": "boom"}
    assert final["output"][0]["content"] == [
        {"type": "output_text", "text": "partial", "annotations": [], "logprobs": []}
    ]
