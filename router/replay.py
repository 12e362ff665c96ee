"""Chat answers between their two wire forms, for the cache.

A streamed answer is gathered into the chat completion it amounts to
(:class:`Gathered`), so one cache entry serves streaming and non-streaming
clients alike; a cached completion is replayed to a streaming client as a
well-formed stream (:func:`stream_of`): the role and content, tool calls
with their indices, the finish reason, the usage chunk when the client
asked for it, and ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelroute.router.stream import event_data, split_events


class Gathered:
    """A chat stream's chunks, folded into one ``chat.completion`` document."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.broken = False

    def feed(self, block: bytes) -> None:
        """Fold the complete events in ``block`` (as relayed to the client)."""
        if self.broken:
            return
        for event in split_events(block):
            data = event_data(event)
            if data is None or data == b"[DONE]":
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                self.broken = True
                return
            if not isinstance(chunk, dict) or "error" in chunk:
                self.broken = True
                return
            self._fold(chunk)

    def _fold(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {k: chunk.get(k) for k in ("id", "created", "model")}
            if chunk.get("system_fingerprint") is not None:
                self.head["system_fingerprint"] = chunk["system_fingerprint"]
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            message = self.choices.setdefault(
                index, {"role": "assistant", "content": None, "finish_reason": None}
            )
            delta = choice.get("delta") or {}
            for field in ("content", "reasoning_content", "refusal"):
                piece = delta.get(field)
                if isinstance(piece, str) and piece:  # an empty piece adds nothing
                    message[field] = (message.get(field) or "") + piece
            for call in delta.get("tool_calls") or ():
                calls = message.setdefault("tool_calls", {})
                slot = calls.setdefault(
                    call.get("index", 0),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                message["finish_reason"] = choice["finish_reason"]

    def completion(self) -> bytes | None:
        """The gathered answer, or None when it is not a complete one."""
        if self.broken or not self.choices:
            return None
        if any(m["finish_reason"] is None for m in self.choices.values()):
            return None
        choices = []
        for index in sorted(self.choices):
            message = dict(self.choices[index])
            finish = message.pop("finish_reason")
            calls = message.pop("tool_calls", None)
            if calls:
                message["tool_calls"] = [calls[i] for i in sorted(calls)]
            choices.append(
                {"index": index, "message": message, "finish_reason": finish, "logprobs": None}
            )
        answer: dict[str, Any] = {**self.head, "object": "chat.completion", "choices": choices}
        if self.usage is not None:
            answer["usage"] = self.usage
        return orjson.dumps(answer)


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_of(answer: bytes, include_usage: bool) -> bytes | None:
    """A cached chat completion as the stream an upstream would have sent; None when
    it is not a chat completion (a cached embeddings answer cannot stream)."""
    try:
        doc = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("object") != "chat.completion":
        return None
    head = {
        "id": doc.get("id"),
        "object": "chat.completion.chunk",
        "created": doc.get("created"),
        "model": doc.get("model"),
    }
    if doc.get("system_fingerprint") is not None:
        head["system_fingerprint"] = doc["system_fingerprint"]
    out = bytearray()
    for choice in doc.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant", "content": ""}
        out += _event({**head, "choices": [_choice(index, delta, None)]})
        if message.get("reasoning_content"):
            reasoning = {"reasoning_content": message["reasoning_content"]}
            out += _event({**head, "choices": [_choice(index, reasoning, None)]})
        if message.get("content"):
            out += _event(
                {**head, "choices": [_choice(index, {"content": message["content"]}, None)]}
            )
        for position, call in enumerate(message.get("tool_calls") or ()):
            piece = {"tool_calls": [{"index": position, **call}]}
            out += _event({**head, "choices": [_choice(index, piece, None)]})
        finish = choice.get("finish_reason") or "stop"
        out += _event({**head, "choices": [_choice(index, {}, finish)]})
    if include_usage and doc.get("usage") is not None:
        out += _event({**head, "choices": [], "usage": doc["usage"]})
    out += b"data: [DONE]\n\n"
    return bytes(out)


def _choice(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
