"""Accepting request bodies: small ones parsed whole, large ones by their top level."""

from __future__ import annotations

import orjson
import pytest

from modelroute.router.accept import CHAT, EMBEDDINGS, SHALLOW_OVER, accept
from modelroute.router.errors import BadRequest

IMAGE = "data:image/png;base64," + "QUJD" * (SHALLOW_OVER // 4)


def big_chat(**extra: object) -> dict[str, object]:
    content = [
        {"type": "text", "text": "what is it"},
        {"type": "image_url", "image_url": {"url": IMAGE}},
    ]
    return {"messages": [{"role": "user", "content": content}], "model": "chat-fast", **extra}


def test_small_bodies_are_parsed_whole() -> None:
    call = accept(
        CHAT, orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    )
    assert call.layout is None and call.model == "m"


def test_large_bodies_are_read_by_their_top_level() -> None:
    call = accept(CHAT, orjson.dumps(big_chat(stream=True, temperature=0.2)))
    assert call.layout is not None
    assert (call.model, call.stream, call.wants_usage) == ("chat-fast", True, False)
    assert call.payload["temperature"] == 0.2
    wants = accept(
        CHAT, orjson.dumps(big_chat(stream=True, stream_options={"include_usage": True}))
    )
    assert wants.wants_usage


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**big_chat(), "model": None}, None),
        ({**big_chat(), "model": 7}, "model"),
        ({k: v for k, v in big_chat().items() if k != "model"}, None),
        ({"model": "m", "prompt": IMAGE}, "messages"),
        ({**big_chat(), "messages": []}, "messages"),
    ],
)
def test_large_bodies_get_the_same_errors(body: dict[str, object], param: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        accept(CHAT, orjson.dumps(body))
    assert caught.value.param == param


def test_a_truncated_large_body_is_refused_by_the_router() -> None:
    with pytest.raises(BadRequest, match="could not parse the JSON"):
        accept(CHAT, orjson.dumps(big_chat())[:-10])


def test_large_embedding_input() -> None:
    call = accept(EMBEDDINGS, orjson.dumps({"model": "e", "input": [IMAGE, "b"]}))
    assert call.layout is not None and call.model == "e"
    with pytest.raises(BadRequest):
        accept(EMBEDDINGS, orjson.dumps({"model": "e", "input": [IMAGE], "stream": True}))


HELLO = [{"role": "user", "content": "hi"}]

# The router's own 400s, with OpenAI's message, `param` and `code` for the same mistakes
# (as the OpenAI API answers them; SDKs and clients match on `code` and `param`).
OPENAI_ERRORS = [
    ({"messages": HELLO}, None, None, "you must provide a model parameter"),
    ({"model": "", "messages": HELLO}, None, None, "you must provide a model parameter"),
    (
        {"model": 5, "messages": HELLO},
        "model",
        "invalid_type",
        "Invalid type for 'model': expected a string, but got an integer instead.",
    ),
    (
        {"model": "m"},
        "messages",
        "missing_required_parameter",
        "Missing required parameter: 'messages'.",
    ),
    (
        {"model": "m", "messages": []},
        "messages",
        "empty_array",
        "Invalid 'messages': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
    ),
    (
        {"model": "m", "messages": "hi"},
        "messages",
        "invalid_type",
        "Invalid type for 'messages': expected an array, but got a string instead.",
    ),
    (
        {"model": "m", "messages": HELLO, "stream": "true"},
        "stream",
        "invalid_type",
        "Invalid type for 'stream': expected a boolean, but got a string instead.",
    ),
]


@pytest.mark.parametrize(("body", "param", "code", "message"), OPENAI_ERRORS)
def test_the_routers_own_errors_use_openais_codes(
    body: dict[str, object], param: str | None, code: str | None, message: str
) -> None:
    with pytest.raises(BadRequest) as info:
        accept(CHAT, orjson.dumps(body))
    error = orjson.loads(info.value.body())["error"]
    assert error == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }
