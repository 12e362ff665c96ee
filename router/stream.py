"""Relaying Server-Sent Events, with a commit point.

Until the first content byte reaches the client, a stream can still fail over
transparently: the upstream's status, headers and any role-only chunk are
held (:func:`open_stream`), and an error event that arrives before content is
a failed attempt like any other. Once content is sent, the stream is
committed; if the upstream fails after that, the client gets an explicit SSE
error event in OpenAI's shape, never a silent truncation and never a replay.

After the commit point the relay works on raw bytes: it forwards everything
up to the last complete event boundary and parses only events that mention
``"usage"``. The router asks upstreams for the usage chunk
(``stream_options.include_usage``) so cost can be counted, and drops that
chunk again when the client had not asked for it, so the client sees exactly
the stream it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from modelroute.router.errors import StreamFailedEarly, error_body
from modelroute.router.http.client import UpstreamResponse


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seen: bool = False

    def take(self, usage: Any) -> None:
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int):
                self.prompt_tokens = prompt
            if isinstance(completion, int):
                self.completion_tokens = completion
            self.seen = True


@dataclass(slots=True)
class StreamState:
    """What the relay carries from before the commit point to after it."""

    strip_usage: bool  # the router asked for usage; the client did not
    deadline: float = 0.0  # loop time by which the whole attempt must end
    status: int = 0
    usage: Usage = field(default_factory=Usage)
    held: list[bytes] = field(default_factory=list)
    pending: bytes = b""
    ended: bool = False  # the upstream finished before any content


def last_boundary(buf: bytes) -> int:
    """Index just past the last complete SSE event in ``buf``, or 0."""
    lf = buf.rfind(b"\n\n")
    crlf = buf.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def split_events(block: bytes) -> list[bytes]:
    """Complete events in ``block`` (which ends on a boundary), each with its terminator."""
    if b"\r\n" in block:
        block = block.replace(b"\r\n", b"\n")
    parts = block.split(b"\n\n")
    return [part + b"\n\n" for part in parts if part]


def event_data(event: bytes) -> bytes | None:
    """The joined ``data:`` payload of an event; None for comments and empty events."""
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[5:].lstrip(b" ") for line in lines)


def has_content(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries anything the client would show or act on."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason") or choice.get("text"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(value for key, value in delta.items() if key != "role"):
            return True
    return False


async def open_stream(response: UpstreamResponse, state: StreamState) -> None:
    """Read until the first content event: held in ``state.held``, then commit.

    Raises StreamFailedEarly on an error event before content; connection
    failures and timeouts propagate as they are (both retryable).
    """
    while True:
        chunk = await response.next_chunk()
        if not chunk:
            if state.pending:
                state.held.append(state.pending)
                state.pending = b""
            state.ended = True
            return
        buf = state.pending + chunk if state.pending else chunk
        cut = last_boundary(buf)
        state.pending = buf[cut:]
        events = split_events(buf[:cut])
        for i, event in enumerate(events):
            data = event_data(event)
            if data is None:
                state.held.append(event)
                continue
            if data == b"[DONE]":
                state.held.append(event)
                continue
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise StreamFailedEarly(event) from None
            if not isinstance(parsed, dict):
                raise StreamFailedEarly(event)
            if "error" in parsed:
                raise StreamFailedEarly(event)
            if parsed.get("usage"):
                state.usage.take(parsed["usage"])
                if state.strip_usage and not parsed.get("choices"):
                    continue
            state.held.append(event)
            if has_content(parsed):
                # Events after the first content one go out through the relay.
                state.pending = b"".join(events[i + 1 :]) + state.pending
                return


def relay_block(block: bytes, state: StreamState) -> bytes:
    """Post-commit: take usage from ``block`` and drop the usage chunk if injected."""
    if b'"usage"' not in block:
        return block
    kept = []
    for event in split_events(block):
        if b'"usage"' in event:
            data = event_data(event)
            parsed: Any = None
            if data is not None and data != b"[DONE]":
                try:
                    parsed = orjson.loads(data)
                except orjson.JSONDecodeError:
                    parsed = None
            if isinstance(parsed, dict) and parsed.get("usage"):
                state.usage.take(parsed["usage"])
                if state.strip_usage and not parsed.get("choices"):
                    continue
        kept.append(event)
    return b"".join(kept)


def interruption_event(message: str) -> bytes:
    """The SSE event that ends a stream whose upstream failed after the commit point."""
    return (
        b"data: "
        + error_body(
            f"The upstream stream was interrupted: {message}",
            "server_error",
            code="stream_interrupted",
        )
        + b"\n\n"
    )
