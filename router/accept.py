"""Accept a request: parse its JSON once and check the few fields routing needs.

Everything else in the body is the upstream's business and passes through
untouched; only ``model`` is rewritten per target (and, for streams, usage
reporting is asked for so cost can be counted — see :mod:`.stream`).

Bodies over :data:`SHALLOW_OVER` (an image prompt is a megabyte of base64)
are not parsed whole: their top level is located (:func:`~.body.top_level`),
its small values parsed, and the big ones checked for shape only. Whatever
is malformed deeper inside reaches the upstream, which refuses it with its own
400, passed through to the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from modelroute.router.body import Layout, top_level
from modelroute.router.errors import BadRequest

SHALLOW_OVER = 256 * 1024
SHALLOW_STEPS = 512  # strings and brackets walked before a full parse is cheaper
SMALL_VALUE = 4096  # top-level values up to this size are parsed in the shallow path


@dataclass(frozen=True, slots=True)
class Api:
    """One proxied OpenAI endpoint: its upstream path and the field it requires."""

    path: str
    required: str
    can_stream: bool


CHAT = Api("/chat/completions", "messages", True)
COMPLETIONS = Api("/completions", "prompt", True)
EMBEDDINGS = Api("/embeddings", "input", False)


@dataclass(slots=True)
class Call:
    """A parsed client request, ready to route."""

    api: Api
    payload: dict[str, Any]  # in the shallow path: the small top-level values only
    model: str
    stream: bool
    wants_usage: bool  # the client asked for the usage chunk itself
    layout: Layout | None = None  # set for a large body that was not parsed whole


def json_content_type(value: bytes | None) -> bool:
    """Whether a request's Content-Type may carry the JSON body (absent counts as yes).

    Anything else is refused: a browser sends ``text/plain`` or form bodies
    cross-origin without a CORS preflight, so accepting them would let any
    web page spend money through a router that has no client keys.
    """
    if value is None:
        return True
    media = value.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def accept(api: Api, body: bytes) -> Call:
    """Parse and check a request body; BadRequest says what is wrong, in OpenAI's words."""
    if not body:
        raise BadRequest("We could not parse the JSON body of your request: the body is empty.")
    if len(body) > SHALLOW_OVER:
        shallow = _shallow(api, body)
        if shallow is not None:
            return shallow
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"We could not parse the JSON body of your request: {exc}. "
            "The OpenAI API expects a JSON payload."
        ) from None
    if not isinstance(payload, dict):
        raise BadRequest("The request body must be a JSON object.")
    return _checked(api, payload, None)


def _shallow(api: Api, body: bytes) -> Call | None:
    """The large-body path; None means "parse it whole" (also to word any error)."""
    layout = top_level(body, SHALLOW_STEPS)
    if layout is None:
        return None
    payload: dict[str, Any] = {}
    for key, (start, end) in layout.fields.items():
        if end - start <= SMALL_VALUE:
            try:
                payload[key] = orjson.loads(body[start:end])
            except orjson.JSONDecodeError:
                return None
    big = {key for key in layout.fields if key not in payload}
    if "model" in big or "stream" in big or "stream_options" in big:
        return None
    if api.required in big and api.required == "messages":
        start, end = layout.fields["messages"]
        inner = body[start + 1 : end - 1].strip()
        if body[start] != 0x5B or not inner:  # not a non-empty array
            return None
        payload["messages"] = ...  # present; its content is left to the upstream
    elif api.required in big:
        payload[api.required] = ...
    return _checked(api, payload, layout)


def _json_kind(value: Any) -> str:
    """How OpenAI names a JSON value's type in its error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _checked(api: Api, payload: dict[str, Any], layout: Layout | None) -> Call:
    """The fields routing needs, checked with OpenAI's messages, codes and params."""
    model = payload.get("model")
    if model is None or model == "":
        raise BadRequest("you must provide a model parameter")
    if not isinstance(model, str):
        raise BadRequest(
            f"Invalid type for 'model': expected a string, but got {_json_kind(model)} instead.",
            param="model",
            code="invalid_type",
        )
    if api.required not in payload:
        raise BadRequest(
            f"Missing required parameter: '{api.required}'.",
            param=api.required,
            code="missing_required_parameter",
        )
    messages = payload[api.required]
    if api.required == "messages" and messages is not ...:
        if not isinstance(messages, list):
            raise BadRequest(
                f"Invalid type for 'messages': expected an array, but got "
                f"{_json_kind(messages)} instead.",
                param="messages",
                code="invalid_type",
            )
        if not messages:
            raise BadRequest(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                param="messages",
                code="empty_array",
            )
    stream = payload.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(
            f"Invalid type for 'stream': expected a boolean, but got {_json_kind(stream)} "
            "instead.",
            param="stream",
            code="invalid_type",
        )
    stream = stream is True
    if stream and not api.can_stream:
        raise BadRequest(f"stream is not supported on {api.path}", param="stream")
    options = payload.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    return Call(
        api=api,
        payload=payload,
        model=model,
        stream=stream,
        wants_usage=wants_usage,
        layout=layout,
    )
