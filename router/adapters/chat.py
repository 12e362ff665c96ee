"""Reading the chat completions side, the same for every client API's adapter.

Both adapters turn chat answers and chunks into another API; what they read
of them — counts, reasoning, tool calls, the shape of a stream — is read
here, checked once, and each adapter only says what its API makes of it
(:class:`ChatStreamReader` is a template: its ``feed`` walks a chunk and calls
the subclass's ``_start``, ``_delta``, ``_close`` and ``_failed``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


def count(value: Any) -> int:
    """A token count as reported: a positive int, anything else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def reasoning_of(said: Mapping[str, Any]) -> str | None:
    """The model's reasoning, under either name upstreams use for it."""
    for key in ("reasoning_content", "reasoning"):
        value = said.get(key)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class ChatUsage:
    prompt: int
    completion: int
    cached: int  # of prompt: served from the provider's prompt cache
    reasoning: int  # of completion


def chat_usage(usage: Any, fallback_input: int = 0) -> ChatUsage:
    """A chat usage object's counts; ``fallback_input`` when there is none."""
    if not isinstance(usage, Mapping):
        return ChatUsage(fallback_input, 0, 0, 0)
    prompt = count(usage.get("prompt_tokens"))
    completion = count(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    if not cached:
        cached = count(usage.get("prompt_cache_hit_tokens"))  # DeepSeek's spelling
    out_details = usage.get("completion_tokens_details")
    reasoning = count(out_details.get("reasoning_tokens")) if isinstance(out_details, Mapping) else 0
    return ChatUsage(prompt, completion, min(cached, prompt), min(reasoning, completion))


def tool_calls_of(said: Mapping[str, Any]) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    """A whole answer's tool calls: (its id if it has one, its function)."""
    calls = said.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        call_id = call.get("id")
        yield (call_id if isinstance(call_id, str) and call_id else None), function


def tool_delta(position: int, call: Mapping[str, Any]) -> tuple[int, str | None, str | None, str]:
    """One tool-call piece of a chat stream chunk, checked: (index, id, name, the piece
    of its arguments); ``position`` stands in for a missing index."""
    index = call.get("index", position)
    index = index if isinstance(index, int) else position
    function = call.get("function")
    function = function if isinstance(function, Mapping) else {}
    name, arguments = function.get("name"), function.get("arguments")
    call_id = call.get("id")
    return (
        index,
        call_id if isinstance(call_id, str) and call_id else None,
        name if isinstance(name, str) and name else None,
        arguments if isinstance(arguments, str) else "",
    )


class ChatStreamReader:
    """Chat completion chunks in, one at a time (``feed``); a subclass says what each
    part becomes in its API and how the stream ends (``finish``, ``error``)."""

    def __init__(self) -> None:
        self.ended = False
        self._finish: Any = None  # the finish_reason, once it came
        self._usage: Any = None  # the usage chunk's object, once it came

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        if self.ended:
            return b""
        error = chunk.get("error")
        if error is not None:
            return self._failed(error)
        out = bytearray(self._start())
        if isinstance(chunk.get("usage"), Mapping):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, Mapping):
            return bytes(out)
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            out += self._delta(delta)
        if choice.get("finish_reason") is not None and not self.ended:
            self._finish = choice["finish_reason"]
            self._finished(choice)
            out += self._close()
        return bytes(out)

    def _tool_deltas(self, delta: Mapping[str, Any]) -> bytes:
        """The delta's tool-call pieces, in order, until the stream ends."""
        out = bytearray()
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            if isinstance(call, Mapping):
                out += self._tool_delta(position, call)
                if self.ended:
                    break
        return bytes(out)

    # --- what a subclass says ---------------------------------------------------------

    def _start(self) -> bytes:
        raise NotImplementedError

    def _delta(self, delta: Mapping[str, Any]) -> bytes:
        raise NotImplementedError

    def _tool_delta(self, position: int, call: Mapping[str, Any]) -> bytes:
        raise NotImplementedError

    def _close(self) -> bytes:
        raise NotImplementedError

    def _failed(self, error: Any) -> bytes:
        """An upstream error chunk (``{"error": ...}``) in the stream."""
        raise NotImplementedError

    def _finished(self, choice: Mapping[str, Any]) -> None:
        """The choice carried the finish reason (already in ``_finish``)."""
