"""Byte-level edits of JSON bodies agree with parsing and re-serialising."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from modelroute.router.body import splice, top_level, usage_of


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


def test_usage_of_does_not_parse_the_whole_answer(monkeypatch: Any) -> None:
    import modelroute.router.body as body

    def no_full_parse(answer: bytes) -> Any:
        raise AssertionError("fell back to a full parse")

    monkeypatch.setattr(body, "_full", no_full_parse)
    usage = {
        "prompt_tokens": 3,
        "completion_tokens": 5,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    answer = orjson.dumps({"choices": [{"message": {"content": "x" * 5000}}], "usage": usage})
    assert body.usage_of(answer) == usage


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), st.booleans())
def test_top_level_layout_agrees_with_a_full_parse(payload: dict[str, Any], pretty: bool) -> None:
    raw = orjson.dumps(payload, option=orjson.OPT_INDENT_2 if pretty else 0)
    layout = top_level(raw, budget=10_000)
    if layout is None:  # only for keys with escapes, which the scan declines
        assert any(orjson.dumps(key) != b'"' + key.encode() + b'"' for key in payload)
        return
    assert set(layout.fields) == set(payload)
    for key, (start, end) in layout.fields.items():
        assert orjson.loads(raw[start:end]) == payload[key]
    assert raw[layout.close] == ord("}")
    if "model" in layout.fields:
        start, end = layout.fields["model"]
        edited = splice(raw, [(start, end, b'"other"'), (layout.close, layout.close, b',"x":1')])
        assert orjson.loads(edited) == {**payload, "model": "other", "x": 1}


def test_top_level_declines_what_it_cannot_vouch_for() -> None:
    assert top_level(b'{"a": [1, 2', budget=100) is None  # unterminated
    assert top_level(b'{"a": "x}', budget=100) is None
    assert top_level(b'{"a": [1}', budget=100) is None  # mismatched brackets
    assert top_level(b'{"a": 1} trailing', budget=100) is None
    assert top_level(b"[1, 2]", budget=100) is None
    assert top_level(b'{"a": 1, "a": 2}', budget=100) is None  # duplicate keys
    many = orjson.dumps({"messages": [{"role": "user", "content": str(i)} for i in range(100)]})
    assert top_level(many, budget=50) is None  # over budget: a full parse is cheaper
    assert top_level(many, budget=10_000) is not None
    escaped = b'{"text": "a \\"quoted\\" word \\\\", "model": "m"}'
    layout = top_level(escaped, budget=10)
    assert layout is not None
    assert orjson.loads(escaped[slice(*layout.fields["model"])]) == "m"
