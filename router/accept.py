"""Accept a request: parse its JSON once and check the few fields routing needs.

Everything else in the body is the upstream's business and passes through
untouched; only ``model`` is rewritten per target (and, for streams, usage
reporting is asked for so cost can be counted — see :mod:`.stream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from modelroute.router.errors import BadRequest


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
    payload: dict[str, Any]
    model: str
    stream: bool
    wants_usage: bool  # the client asked for the usage chunk itself


def accept(api: Api, body: bytes) -> Call:
    """Parse and check a request body; BadRequest says what is wrong, in OpenAI's words."""
    if not body:
        raise BadRequest("We could not parse the JSON body of your request: the body is empty.")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"We could not parse the JSON body of your request: {exc}. "
            "The OpenAI API expects a JSON payload."
        ) from None
    if not isinstance(payload, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = payload.get("model")
    if model is None:
        raise BadRequest("you must provide a model parameter", param="model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model must be a non-empty string", param="model")
    if api.required not in payload:
        raise BadRequest(f"Missing required parameter: '{api.required}'.", param=api.required)
    if api.required == "messages" and not (
        isinstance(payload["messages"], list) and payload["messages"]
    ):
        raise BadRequest("messages must be a non-empty array", param="messages")
    stream = payload.get("stream") is True
    if stream and not api.can_stream:
        raise BadRequest(f"stream is not supported on {api.path}", param="stream")
    options = payload.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    return Call(api=api, payload=payload, model=model, stream=stream, wants_usage=wants_usage)
