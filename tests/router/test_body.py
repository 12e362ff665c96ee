"""Byte-level edits of JSON bodies agree with parsing and re-serialising."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from modelroute.router.body import add_stream_usage, rewrite_model, usage_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    st.text(min_size=1, max_size=30),
    st.text(min_size=1, max_size=30),
    st.booleans(),
)
def test_rewrite_model_is_the_same_as_reserialising(
    rest: dict[str, Any], old: str, new: str, pretty: bool
) -> None:
    payload = {**rest, "model": old}
    raw = orjson.dumps(payload, option=orjson.OPT_INDENT_2 if pretty else 0)
    rewritten = rewrite_model(raw, old, new)
    if rewritten is None:
        # Only when `"model"` appears more than once (as a nested key or a value).
        assert raw.count(b'"model"') > 1
        return
    assert orjson.loads(rewritten) == {**payload, "model": new}


def test_rewrite_model_refuses_what_it_cannot_be_sure_of() -> None:
    assert rewrite_model(b'{"messages": []}', "a", "b") is None
    nested = b'{"model": "a", "tools": [{"parameters": {"model": {"type": "string"}}}]}'
    assert rewrite_model(nested, "a", "b") is None
    escaped = b'{"model": "caf\\u00e9"}'  # not orjson's spelling of the same string
    assert rewrite_model(escaped, "café", "b") is None
    assert orjson.loads(rewrite_model(b'{"model" :\n "a", "x": 1}', "a", "z/y") or b"") == {
        "model": "z/y",
        "x": 1,
    }


def test_add_stream_usage() -> None:
    body = add_stream_usage(b'{"model": "m", "stream": true}  \n')
    assert body is not None
    assert orjson.loads(body)["stream_options"] == {"include_usage": True}
    assert add_stream_usage(b'{"stream_options": {"x": 1}}') is None
    assert add_stream_usage(b"[1]") is None


def test_usage_of_reads_the_slice_and_falls_back() -> None:
    answer = {
        "id": "x",
        "choices": [{"message": {"content": 'the word "usage" inside'}}],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 1},
        },
    }
    assert usage_of(orjson.dumps(answer)) == answer["usage"]
    assert usage_of(b'{"usage": null}') is None
    assert usage_of(b'{"usage": {"model": "x", "total": 1}}') == {
        "model": "x",
        "total": 1,
    }  # via full parse
    assert usage_of(b"not json") is None
    assert usage_of(b'{"a": 1}') is None
