"""The prompt-token estimator against counts OpenAI publishes, within the ±25% it aims for.

Reference counts: tiktoken's README (``"hello world"`` is 2 tokens) and the
OpenAI cookbook "How to count tokens with tiktoken" (single strings in
o200k_base; the chat example is 129 prompt tokens on gpt-4 and 124 on
gpt-4o; the weather-tool example 105 and 101). For a string of a few tokens a
quarter is less than one token, so those allow one token either way.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelroute.router import tokens
from modelroute.router.tokens import estimate_tokens, text_tokens


def close(estimate: int, truth: int) -> bool:
    return abs(estimate - truth) <= max(1.0, 0.25 * truth)


@pytest.mark.parametrize(
    ("text", "truth"),
    [
        ("hello world", 2),
        ("tiktoken is great!", 6),
        ("antidisestablishmentarianism", 6),
        ("お誕生日おめでとう", 8),
    ],
)
def test_single_strings_are_close_to_published_counts(text: str, truth: int) -> None:
    assert close(text_tokens(text), truth)


def test_the_cookbook_chat_example_is_within_a_quarter() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
        {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
        {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
    ]
    estimate = estimate_tokens({"model": "gpt-4o", "messages": messages})
    assert close(estimate, 129)  # gpt-4
    assert close(estimate, 124)  # gpt-4o: the estimate errs high, the safe side for a context filter


def test_the_cookbook_tool_example_is_within_a_quarter() -> None:
    tools = [{
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    }]
    messages = [
        {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
        {"role": "user", "content": "What's the weather like in San Francisco?"},
    ]
    estimate = estimate_tokens({"messages": messages, "tools": tools})
    assert close(estimate, 105)  # gpt-4
    assert close(estimate, 101)  # gpt-4o
    assert estimate > estimate_tokens({"messages": messages})


def test_scripts_are_weighted_by_their_typical_token_density() -> None:
    assert text_tokens("a" * 4000) == 1000  # ASCII: four characters a token
    assert text_tokens("中" * 1000) == 1000  # CJK: one a character
    assert text_tokens("я" * 3000) == 1000  # Cyrillic and other two-byte scripts: three characters a token
    assert text_tokens("🙂" * 100) == 150
    assert text_tokens("") == 0


def test_images_count_a_fixed_amount_whatever_their_size() -> None:
    def with_image(detail: str | None, data: str) -> dict[str, Any]:
        image: dict[str, Any] = {"url": f"data:image/png;base64,{data}"}
        if detail:
            image["detail"] = detail
        content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": image}]
        return {"messages": [{"role": "user", "content": content}]}

    text_only = estimate_tokens({"messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]})
    assert estimate_tokens(with_image("low", "A" * 10)) - text_only == tokens.IMAGE_LOW
    assert estimate_tokens(with_image(None, "A" * 1_000_000)) - text_only == tokens.IMAGE_DEFAULT
    assert estimate_tokens(with_image("high", "A")) - text_only == tokens.IMAGE_DEFAULT


def test_tool_calls_schemas_and_framing_are_counted() -> None:
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}' * 40}}
    ]}
    assert estimate_tokens({"messages": [call]}) > 150
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {
        "verdict": {"type": "string", "description": "x" * 400}}}}}
    bare = estimate_tokens({"messages": [{"role": "user", "content": "hi"}]})
    assert estimate_tokens({"messages": [{"role": "user", "content": "hi"}], "response_format": schema}) >= bare + 100
    assert bare == tokens.REPLY_PRIMER + tokens.PER_MESSAGE + 1


@pytest.mark.parametrize("payload", [{}, {"messages": "x"}, {"messages": [None, 3]}, {"tools": "x"}])
def test_malformed_payloads_do_not_raise(payload: dict[str, Any]) -> None:
    assert estimate_tokens(payload) >= 0


def test_public_names_are_complete_and_sorted() -> None:
    assert tokens.__all__ == sorted(tokens.__all__)
    assert all(hasattr(tokens, name) for name in tokens.__all__)
