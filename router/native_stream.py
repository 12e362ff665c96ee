"""Streams in the client's own API, relayed from a provider that serves it natively.

A Messages or Responses request sent to a provider that declares that API
(``providers[].apis``) is passed through as it is, and so is its stream of
typed events. The relay keeps the promises it keeps for chat streams: it
holds events until the first content one (the commit point: before it, a
failure still moves to the next candidate), takes usage for cost and
budgets, notices the upstream's own error events and the event that ends the
stream, and, when the upstream fails after content, ends the stream with an
error event in the client's API — never a silent cut.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelroute.router.errors import StreamFailedEarly
from modelroute.router.http.client import UpstreamResponse
from modelroute.router.stream import StreamState, event_data, split_events

# Event types that carry what a client shows or acts on: the commit point.
_CONTENT = {
    "messages": frozenset({"content_block_delta", "message_delta", "message_stop"}),
    "responses": frozenset(
        {
            "response.output_text.delta",
            "response.refusal.delta",
            "response.reasoning_text.delta",
            "response.reasoning_summary_text.delta",
            "response.function_call_arguments.delta",
            "response.output_item.done",
            "response.completed",
            "response.incomplete",
        }
    ),
}
_END = {
    "messages": frozenset({"message_stop"}),
    "responses": frozenset({"response.completed", "response.incomplete"}),
}
_ERROR = frozenset({"error", "response.failed"})


def _usage_of(kind: str, parsed: dict[str, Any]) -> Any:
    if kind == "message_start":
        message = parsed.get("message")
        return message.get("usage") if isinstance(message, dict) else None
    if kind == "message_delta":
        return parsed.get("usage")
    if kind in ("response.completed", "response.incomplete"):
        response = parsed.get("response")
        return response.get("usage") if isinstance(response, dict) else None
    return None


def _note(api: str, kind: str, parsed: dict[str, Any], state: StreamState) -> None:
    usage = _usage_of(kind, parsed)
    if isinstance(usage, dict):
        state.usage.take(usage)
    if kind in _END[api]:
        state.done = state.finished = True
    if kind == "response.created":
        response = parsed.get("response")
        if isinstance(response, dict) and isinstance(response.get("id"), str):
            state.native_id = response["id"]
    sequence = parsed.get("sequence_number")
    if isinstance(sequence, int):
        state.sequence = max(state.sequence, sequence)


def _parsed(event: bytes) -> tuple[str, dict[str, Any]] | None:
    data = event_data(event)
    if data is None:
        return None
    parsed = orjson.loads(data)
    if not isinstance(parsed, dict):
        raise ValueError("not an object")
    kind = parsed.get("type")
    return (kind if isinstance(kind, str) else ""), parsed


async def open_native_stream(api: str, response: UpstreamResponse, state: StreamState) -> None:
    """Read until the first content event (held in ``state.held``); StreamFailedEarly
    on an error event or a malformed one before it."""
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
            try:
                found = _parsed(event)
            except (orjson.JSONDecodeError, ValueError):
                raise StreamFailedEarly(event) from None
            state.held.append(event)
            if found is None:
                continue
            kind, parsed = found
            if kind in _ERROR:
                raise StreamFailedEarly(event)
            _note(api, kind, parsed, state)
            if kind in _CONTENT[api]:
                rest = b"".join(events[i + 1 :])
                if rest:
                    state.pending[:0] = rest
                return


def relay_native(api: str, block: bytes, state: StreamState) -> bytes:
    """Post-commit: check each event; what the client gets of ``block`` (everything up
    to a malformed event, which stops the relay: ``state.broken``)."""
    kept: list[bytes] = []
    broken = False
    for event in split_events(block):
        try:
            found = _parsed(event)
        except (orjson.JSONDecodeError, ValueError):
            state.broken = "the upstream sent a stream event that is not a JSON object"
            broken = True
            break
        kept.append(event)
        if found is None:
            continue
        kind, parsed = found
        if kind in _ERROR:
            error = parsed.get("error") if kind == "error" else parsed.get("response")
            message = error.get("message") if isinstance(error, dict) else parsed.get("message")
            if kind == "response.failed" and isinstance(error, dict):
                inner = error.get("error")
                message = inner.get("message") if isinstance(inner, dict) else message
            state.upstream_error = str(message or "upstream error event")[:200]
            continue
        _note(api, kind, parsed, state)
    return b"".join(kept) if broken or b"\r\n" in block else block


def native_interruption(api: str, message: str, state: StreamState) -> bytes:
    """The event that ends a native stream whose upstream failed after content."""
    text = f"The upstream stream was interrupted: {message}"
    if api == "messages":
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": "api_error", "message": text},
        }
    else:
        body = {
            "type": "error",
            "code": "stream_interrupted",
            "message": text,
            "param": None,
            "sequence_number": state.sequence + 1,
        }
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
