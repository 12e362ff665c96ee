"""Chat completion streams for the adapters' property tests, and SSE parsing.

:func:`chat_streams` draws what an OpenAI-compatible upstream may send:
reasoning, text, refusal and tool-call deltas in any order (tool calls one
after another, their arguments cut anywhere, several in one chunk, with or
without ids), empty deltas and keep-alive chunks, a finish reason or none,
usage in its own chunk, in the last choice chunk, or not at all. Each draw
comes with the whole chat completion the same answer would have been, so a
test can check that a translated stream and a translated whole answer agree.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import strategies as st

CHAT_ID = "chatcmpl-test"
MODEL = "upstream-model"


@dataclass
class ChatStream:
    chunks: list[dict[str, Any]]
    completion: dict[str, Any]  # the same answer, whole


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": CHAT_ID,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": choices,
    }


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)] or [""]


_texts = st.text(max_size=6)
_json_values = st.one_of(st.integers(-5, 5), st.text(max_size=4), st.booleans(), st.none())
_arguments = st.dictionaries(st.text(max_size=4), _json_values, max_size=3)
_usage = st.builds(
    lambda prompt, completion, cached, reasoning: {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt)},
        "completion_tokens_details": {"reasoning_tokens": min(reasoning, completion)},
    },
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 100),
)


@st.composite
def chat_streams(draw: st.DrawFn) -> ChatStream:
    chunks: list[dict[str, Any]] = []
    if draw(st.booleans()):
        chunks.append(chunk({"role": "assistant", "content": ""}))
    said: dict[str, list[str]] = {"reasoning_content": [], "content": [], "refusal": []}
    calls: list[dict[str, Any]] = []
    spoken = draw(st.sampled_from(["content", "content", "refusal"]))  # never both at once
    kinds = st.sampled_from(["reasoning_content", spoken, spoken, "tool", "tools"])
    for kind in draw(st.lists(kinds, max_size=6)):
        if kind in said:
            for piece in draw(st.lists(_texts, min_size=1, max_size=3)):
                said[kind].append(piece)
                chunks.append(chunk({kind: piece}))
            continue
        if draw(st.integers(0, 9)) == 0:
            chunks.append(chunk({}))  # an empty delta
        count = 1 if kind == "tool" else draw(st.integers(1, 3))
        packed: list[dict[str, Any]] = []
        for _ in range(count):
            index = len(calls)
            name = draw(st.sampled_from(["get_weather", "search", "f"]))
            arguments = "" if draw(st.integers(0, 5)) == 0 else json.dumps(draw(_arguments))
            call_id = f"call_{index}" if draw(st.integers(0, 4)) else None
            calls.append({"id": call_id, "name": name, "arguments": arguments})
            pieces = _split(arguments, draw(st.lists(st.integers(0, 200), max_size=3)))
            head: dict[str, Any] = {"index": index, "type": "function"}
            if call_id is not None:
                head["id"] = call_id
            fragments = [{**head, "function": {"name": name, "arguments": pieces[0]}}]
            fragments += [{"index": index, "function": {"arguments": p}} for p in pieces[1:]]
            if kind == "tools":  # whole calls, several to a chunk
                packed.append({**head, "function": {"name": name, "arguments": arguments}})
            else:
                chunks.extend(chunk({"tool_calls": [f]}) for f in fragments)
        if packed:
            chunks.append(chunk({"tool_calls": packed}))
    finish = draw(st.sampled_from([None, "stop", "length", "tool_calls", "content_filter"]))
    usage = draw(st.one_of(st.none(), _usage))
    where = draw(st.sampled_from(["own", "last"]))
    if finish is not None:
        chunks.append(chunk({}, finish))
    if usage is not None:
        if where == "last" and finish is not None:
            chunks[-1]["usage"] = usage
        else:
            chunks.append({**chunk(), "usage": usage})
    if draw(st.integers(0, 9)) == 0:
        chunks.insert(draw(st.integers(0, len(chunks))), chunk())  # a keep-alive

    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(said["content"]) or None,
        "refusal": "".join(said["refusal"]) or None,
    }
    if said["reasoning_content"] and "".join(said["reasoning_content"]):
        message["reasoning_content"] = "".join(said["reasoning_content"])
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ]
    completion = {
        "id": CHAT_ID,
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        completion["usage"] = usage
    return ChatStream(chunks, completion)


def sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Named SSE events (``event:`` and ``data:`` lines), strictly framed."""
    assert data.endswith(b"\n\n") or not data
    events = []
    for block in data.split(b"\n\n")[:-1]:
        lines = block.split(b"\n")
        assert (
            len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
        )
        events.append((lines[0][7:].decode(), orjson.loads(lines[1][6:])))
    return events
