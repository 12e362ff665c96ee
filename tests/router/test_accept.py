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
        ({**big_chat(), "model": None}, "model"),
        ({**big_chat(), "model": 7}, "model"),
        ({k: v for k, v in big_chat().items() if k != "model"}, "model"),
        ({"model": "m", "prompt": IMAGE}, "messages"),
        ({**big_chat(), "messages": []}, "messages"),
    ],
)
def test_large_bodies_get_the_same_errors(body: dict[str, object], param: str) -> None:
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
