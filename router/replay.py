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

from modelroute.router.cache import MAX_ENTRY_BYTES
from modelroute.router.stream import event_data, split_events


class Gathered:
    """A chat stream's chunks, folded into one ``chat.completion`` document.

    Text is kept as its pieces and joined once, at the end (joining as it comes
    costs the square of the answer's length: seconds for a long one), and only up
    to :data:`~.cache.MAX_ENTRY_BYTES`: a longer answer is never kept, so folding
    it stops there.
    """

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}  # index -> message, pieces in lists
        self.usage: Any = None
        self.broken = False
        self._size = 0  # characters of text folded

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
                chunk = None
            if not isinstance(chunk, dict) or "error" in chunk or not self._fold(chunk):
                self._give_up()  # relayed as it came, but not an answer to keep
                return
            if self._size > MAX_ENTRY_BYTES:
                self._give_up()
                return

    def _give_up(self) -> None:
        self.broken = True
        self.choices.clear()

    def _fold(self, chunk: dict[str, Any]) -> bool:
        """Fold one chunk; False when it is not shaped as a chat chunk (an index that is
        not a number, a delta or tool call that is not an object)."""
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
            delta = choice.get("delta") or {}
            calls_in = (delta.get("tool_calls") or ()) if isinstance(delta, dict) else None
            if not isinstance(index, int) or not isinstance(calls_in, list | tuple):
                return False
            message = self.choices.setdefault(
                index, {"role": "assistant", "content": None, "finish_reason": None}
            )
            for field in ("content", "reasoning_content", "refusal"):
                piece = delta.get(field)
                if isinstance(piece, str) and piece:  # an empty piece adds nothing
                    message.setdefault("_" + field, []).append(piece)
                    self._size += len(piece)
            for call in calls_in:
                function = (call.get("function") or {}) if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(call.get("index", 0), int):
                    return False
                name, arguments = function.get("name") or "", function.get("arguments") or ""
                if not isinstance(name, str) or not isinstance(arguments, str):
                    return False
                calls = message.setdefault("tool_calls", {})
                slot = calls.setdefault(
                    call.get("index", 0), {"id": None, "type": "function", "function": ([], [])}
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                slot["function"][0].append(name)
                slot["function"][1].append(arguments)
                self._size += len(name) + len(arguments)
            if choice.get("finish_reason"):
                message["finish_reason"] = choice["finish_reason"]
        return True

    def completion(self) -> bytes | None:
        """The gathered answer, or None when it is not a complete one."""
        if self.broken or not self.choices:
            return None
        if any(m["finish_reason"] is None for m in self.choices.values()):
            return None
        choices = []
        for index in sorted(self.choices):
            message: dict[str, Any] = {}
            for key, value in self.choices[index].items():
                if key.startswith("_"):  # a text field's pieces
                    message[key[1:]] = "".join(value)
                elif key != "finish_reason":
                    message.setdefault(key, value)
            calls = message.pop("tool_calls", None)
            if calls:
                message["tool_calls"] = [
                    {**calls[i], "function": _joined(calls[i]["function"])} for i in sorted(calls)
                ]
            finish = self.choices[index]["finish_reason"]
            choices.append(
                {"index": index, "message": message, "finish_reason": finish, "logprobs": None}
            )
        answer: dict[str, Any] = {**self.head, "object": "chat.completion", "choices": choices}
        if self.usage is not None:
            answer["usage"] = self.usage
        return orjson.dumps(answer)


def _joined(function: tuple[list[str], list[str]]) -> dict[str, str]:
    return {"name": "".join(function[0]), "arguments": "".join(function[1])}


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
    choices = doc.get("choices") or ()
    if not isinstance(choices, list | tuple) or not all(_replayable(c) for c in choices):
        return None  # relayed as it came when it was new; not something to rebuild a stream of
    head = {
        "id": doc.get("id"),
        "object": "chat.completion.chunk",
        "created": doc.get("created"),
        "model": doc.get("model"),
    }
    if doc.get("system_fingerprint") is not None:
        head["system_fingerprint"] = doc["system_fingerprint"]
    out = bytearray()
    for choice in choices:
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


def _replayable(choice: Any) -> bool:
    """A choice :func:`stream_of` can replay: an object with a message object whose
    tool calls (if any) are a list of objects."""
    if not isinstance(choice, dict) or not isinstance(choice.get("message") or {}, dict):
        return False
    calls = (choice.get("message") or {}).get("tool_calls") or ()
    return isinstance(calls, list | tuple) and all(isinstance(c, dict) for c in calls)
