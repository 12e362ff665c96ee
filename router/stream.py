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
chunk again when the client had not asked for it, and with it the
``"usage":null`` that an upstream puts in every other chunk once usage is
asked for (:func:`drop_null_usage`), so the client sees exactly the stream it
would have seen.

Every event is checked as it passes: a ``data:`` payload that is not JSON
ends the stream with an error event (strict SDKs would raise mid-stream),
an upstream error event is relayed but fails the attempt for the endpoint's
health, one event may not grow past :data:`MAX_EVENT_BYTES`, and a stream
that ends with neither ``[DONE]`` nor a ``finish_reason`` was cut short.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from modelroute.router.errors import (
    AttemptFailed,
    BadUpstreamAnswer,
    StreamFailedEarly,
    StreamFailedLate,
    UpstreamReset,
    error_body,
)
from modelroute.router.http.client import UpstreamResponse


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, served from the provider's prompt cache
    seen: bool = False
    raw: Any = None  # the usage object as the upstream reported it

    def take(self, usage: Any) -> None:
        if isinstance(usage, dict):
            if "prompt_tokens" not in usage and (
                "input_tokens" in usage or "output_tokens" in usage
            ):
                self._take_native(usage)
                return
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and prompt >= 0:  # (a negative count is no count)
                self.prompt_tokens = prompt
            if isinstance(completion, int) and completion >= 0:
                self.completion_tokens = completion
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            if cached is None:
                cached = usage.get("prompt_cache_hit_tokens")  # DeepSeek's spelling
            if isinstance(cached, int) and 0 <= cached <= self.prompt_tokens:
                self.cached_tokens = cached
            self.seen = True
            self.raw = usage

    def _take_native(self, usage: dict[str, Any]) -> None:
        """Anthropic's usage (input_tokens excludes cache reads and writes) or the
        Responses API's (input_tokens includes input_tokens_details.cached_tokens)."""
        fresh, output = usage.get("input_tokens"), usage.get("output_tokens")
        read = usage.get("cache_read_input_tokens")
        written = usage.get("cache_creation_input_tokens")
        details = usage.get("input_tokens_details")
        if isinstance(fresh, int) and fresh >= 0:
            if isinstance(read, int) or isinstance(written, int):
                cached = read if isinstance(read, int) and read > 0 else 0
                created = written if isinstance(written, int) and written > 0 else 0
                self.prompt_tokens = fresh + cached + created
                self.cached_tokens = cached
            else:
                self.prompt_tokens = fresh
                hit = details.get("cached_tokens") if isinstance(details, dict) else None
                if isinstance(hit, int) and 0 <= hit <= fresh:
                    self.cached_tokens = hit
        if isinstance(output, int) and output >= 0:
            self.completion_tokens = output
        self.seen = True
        self.raw = usage

    def as_dict(self) -> dict[str, Any]:
        if isinstance(self.raw, dict):
            return self.raw
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def cost(self, input_price: float, cached_price: float, output_price: float) -> float:
        """USD, at per-token prices: cached prompt tokens at the cached price."""
        fresh = self.prompt_tokens - self.cached_tokens
        return (
            fresh * input_price
            + self.cached_tokens * cached_price
            + self.completion_tokens * output_price
        )


@dataclass(slots=True)
class StreamState:
    """What the relay carries from before the commit point to after it."""

    strip_usage: bool  # the router asked for usage; the client did not
    deadline: float = 0.0  # loop time by which the whole attempt must end
    status: int = 0
    usage: Usage = field(default_factory=Usage)
    held: list[bytes] = field(default_factory=list)
    pending: bytearray = field(default_factory=bytearray)  # an event not yet complete
    ended: bool = False  # the upstream finished before any content
    done: bool = False  # ``data: [DONE]`` seen
    finished: bool = False  # a choice's finish_reason seen
    upstream_error: str | None = None  # an error event the upstream sent after content
    broken: str | None = None  # why the relay must stop (a malformed event)
    close_delimited: bool = False  # the upstream's body ends only when it closes
    sequence: int = -1  # the last sequence_number of a native Responses stream
    native_id: str | None = None  # a native Responses stream's response id

    def feed(self, data: bytes) -> bytes:
        """Add received bytes; the complete events so far (ending on a boundary), or b"".

        Only the new bytes (and the three before them, where a boundary may
        straddle) are searched, and the incomplete rest is kept in a bytearray,
        so an event arriving in many small pieces costs linear time, not
        quadratic; an event larger than MAX_EVENT_BYTES is refused.
        """
        pending = self.pending
        if not pending:
            cut = last_boundary(data)
            if cut == len(data):
                return data
            pending += data[cut:]
            self._check_size()
            return data[:cut]
        keep = min(3, len(pending))
        cut = last_boundary(bytes(pending[-keep:]) + data)
        if cut == 0:
            pending += data
            self._check_size()
            return b""
        cut -= keep  # offset in ``data`` just past the boundary
        block = bytes(pending) + data[:cut]
        pending.clear()
        pending += data[cut:]
        self._check_size()
        return block

    def take_complete(self) -> bytes:
        """The complete events already pending (held back at the commit point)."""
        cut = last_boundary(bytes(self.pending))
        block = bytes(self.pending[:cut])
        del self.pending[:cut]
        return block

    def _check_size(self) -> None:
        if len(self.pending) > MAX_EVENT_BYTES:
            raise BadUpstreamAnswer(
                f"upstream stream event is larger than the limit of {MAX_EVENT_BYTES} bytes"
            )


MAX_EVENT_BYTES = 1024 * 1024  # one SSE event; real chunks are a few hundred bytes


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

    Raises StreamFailedEarly on an error event (or an event that is not JSON)
    before content; connection failures and timeouts propagate as they are.
    """
    while True:
        chunk = await response.next_chunk()
        if not chunk:
            if state.pending:
                state.held.append(bytes(state.pending))
                state.pending.clear()
            state.ended = True
            return
        events = split_events(state.feed(chunk))
        for i, event in enumerate(events):
            data = event_data(event)
            if data is None:
                state.held.append(event)
                continue
            if data == b"[DONE]":
                state.done = True
                state.held.append(event)
                continue
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise StreamFailedEarly(event) from None
            if not isinstance(parsed, dict):
                raise StreamFailedEarly(event)
            if is_error_event(event, parsed):
                raise StreamFailedEarly(event)
            if parsed.get("usage"):
                state.usage.take(parsed["usage"])
                if state.strip_usage and not parsed.get("choices"):
                    continue
            state.held.append(drop_null_usage(event) if state.strip_usage else event)
            if has_content(parsed):
                _note_finish(parsed, state)
                # Events after the first content one go out through the relay.
                rest = b"".join(events[i + 1 :])
                if rest:
                    state.pending[:0] = rest
                return


def is_error_event(event: bytes, parsed: dict[str, Any]) -> bool:
    """An error in OpenAI's shape, or an SSE event named ``error``."""
    return (
        parsed.get("error") is not None
        or event.startswith(b"event: error")
        or b"\nevent: error" in event
    )


def _note_finish(chunk: dict[str, Any], state: StreamState) -> None:
    choices = chunk.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                state.finished = True


def relay_block(block: bytes, state: StreamState) -> bytes:
    """Post-commit: check each event of ``block``; what the client gets of it.

    Takes usage (dropping the usage chunk the router asked for itself), notes
    ``[DONE]``, finish reasons and upstream error events, and stops at the
    first event whose data is not JSON (``state.broken`` says why): what
    comes before it is returned, the rest is not relayed.
    """
    if _plain_events_checked(block, state):
        # the common case: content chunks, checked and relayed as they are
        return drop_null_usage(block) if state.strip_usage else block
    kept: list[bytes] = []
    changed = False
    for event in split_events(block):
        data = event_data(event)
        if data is None:
            kept.append(event)
            continue
        if data == b"[DONE]":
            state.done = True
            kept.append(event)
            continue
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            state.broken = "the upstream sent a stream event that is not valid JSON"
            changed = True
            break
        if not isinstance(parsed, dict):
            state.broken = "the upstream sent a stream event that is not a JSON object"
            changed = True
            break
        if is_error_event(event, parsed):
            error = parsed.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            state.upstream_error = str(message or "upstream error event")[:200]
        elif parsed.get("usage"):
            state.usage.take(parsed["usage"])
            if state.strip_usage and not parsed.get("choices"):
                changed = True
                continue
        if not state.finished:
            _note_finish(parsed, state)
        kept.append(event)
    if changed or b"\r\n" in block:
        block = b"".join(kept)  # else relayed byte for byte
    return drop_null_usage(block) if state.strip_usage else block


_NULL_USAGE = (b',"usage":null', b', "usage": null')  # compact (OpenAI) and json.dumps spacing


def drop_null_usage(block: bytes) -> bytes:
    """``block`` without the ``"usage":null`` members that upstreams add to every chunk
    once usage is asked for; for when the router asked and the client did not.

    Bytes-level and safe: a ``"`` inside a JSON string is escaped, so ``,"usage":``
    can only be a member; the search costs about a microsecond per block.
    """
    if b'"usage"' not in block:
        return block
    for spelling in _NULL_USAGE:
        block = block.replace(spelling, b"")
    return block


def _plain_events_checked(block: bytes, state: StreamState) -> bool:
    """The fast path of :func:`relay_block` for one-line ``data: {...}`` events and
    comments (``\r\n`` line ends, ``event:`` fields and multi-line data leave a line
    break inside a part): each payload parsed once, the finish reason looked for
    only when it is not null. False hands the block to the full path, which
    repeats nothing harmful."""
    loads = orjson.loads
    for part in block.split(b"\n\n"):
        if not part or part[:1] == b":":
            continue
        if part[:6] != b"data: " or b"\n" in part:
            return False
        payload = part[6:]
        if payload == b"[DONE]":
            state.done = True
            continue
        try:
            parsed = loads(payload)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(parsed, dict) or parsed.get("usage") is not None or "error" in parsed:
            return False  # usage to take (or strip), an error to note: the full path
        if not state.finished and b'"finish_reason":null' not in payload:
            _note_finish(parsed, state)
    return True


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


def stream_end_failure(state: StreamState) -> AttemptFailed | None:
    """How a relayed stream that reached its end judges the upstream: None is success.

    A malformed event, an upstream error event, or an end with neither
    ``[DONE]`` nor a finish reason (a close-delimited stream cut by a clean
    close looks exactly like this) count against the endpoint's health.
    """
    if state.broken is not None:
        return BadUpstreamAnswer(state.broken)
    if state.upstream_error is not None:
        return StreamFailedLate(state.upstream_error)
    if not state.done and (state.close_delimited or not state.finished):
        # A close-delimited stream has no framing to end it, so only ``[DONE]`` proves
        # that its close was the end and not a cut (with n > 1 a finish_reason of one
        # choice says nothing of the others).
        return UpstreamReset("upstream stream ended before it finished")
    return None
