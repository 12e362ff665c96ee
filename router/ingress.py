"""Client APIs served through chat completions: Anthropic Messages and OpenAI Responses.

:func:`accept_foreign` parses such a request, translates it (:mod:`.adapters`)
and hands the proxy an ordinary chat :class:`~.accept.Call` plus an
:class:`Ingress`: what turns the chat answer, stream or error back into the
client's API on the way out. Routing, tiers, failover, budgets, the cache and
metrics see only chat; translation lives in the adapters and here, nowhere else.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from modelroute.router.accept import CHAT, Api, Call
from modelroute.router.adapters import anthropic, responses
from modelroute.router.errors import BadRequest, ClientError
from modelroute.router.stream import event_data, split_events
from modelroute.router.tokens import estimate_tokens

MESSAGES = Api("/messages", "messages", True)
RESPONSES = Api("/responses", "input", True)


class Translator(Protocol):
    ended: bool

    def feed(self, chunk: Any) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, message: str) -> bytes: ...


class Ingress:
    """One client request's way back: its answer, stream and errors in its own API.

    For a target whose provider serves the client's API itself (``apis``), the
    request goes as it is (:meth:`native_body`) and nothing comes back through here.
    """

    api: Api
    name: str  # as in providers[].apis
    max_key: str  # the client API's field for the most output tokens

    def __init__(self, model: str, request: dict[str, Any]) -> None:
        self.model = model
        self.request = request
        self.untranslatable: BadRequest | None = None  # only native targets may take it
        self._stream: Translator | None = None

    def native_body(self, upstream_model: str, cap: Any) -> bytes:
        """The client's own request for a native target: its model, and at most ``cap``
        output tokens (what a budget reserved, when it lowered the client's)."""
        body = dict(self.request)
        body["model"] = upstream_model
        if isinstance(cap, int) and not isinstance(cap, bool):
            current = body.get(self.max_key)
            if not isinstance(current, int) or current > cap:
                body[self.max_key] = cap
        return orjson.dumps(body)

    def answer(self, chat_answer: bytes) -> bytes:
        raise NotImplementedError

    def error(self, status: int, openai_body: bytes) -> bytes:
        """An OpenAI-shaped error body (the upstream's, or the router's own) re-shaped."""
        return openai_body

    def translator(self) -> Translator:
        raise NotImplementedError

    def events(self, block: bytes) -> bytes:
        """Complete chat SSE events (as relayed) → the client's events."""
        if self._stream is None:
            self._stream = self.translator()
        out = bytearray()
        for event in split_events(block):
            data = event_data(event)
            if data is None or data == b"[DONE]":
                continue
            out += self._stream.feed(orjson.loads(data))
        return bytes(out)

    def end(self) -> bytes:
        """The stream ended cleanly: the client API's closing events."""
        if self._stream is None:
            self._stream = self.translator()
        return b"" if self._stream.ended else self._stream.finish()

    def interrupted(self, message: str) -> bytes:
        """The stream failed after content: the client API's error event."""
        if self._stream is None:
            self._stream = self.translator()
        if self._stream.ended:
            return b""
        return self._stream.error(message)


class MessagesIngress(Ingress):
    api = MESSAGES
    name = "messages"
    max_key = "max_tokens"

    def answer(self, chat_answer: bytes) -> bytes:
        return orjson.dumps(anthropic.from_chat(orjson.loads(chat_answer), self.model))

    def error(self, status: int, openai_body: bytes) -> bytes:
        return anthropic.from_openai_error(status, openai_body)

    def translator(self) -> Translator:
        return anthropic.StreamTranslator(self.model)


class ResponsesIngress(Ingress):
    api = RESPONSES
    name = "responses"
    max_key = "max_output_tokens"

    def answer(self, chat_answer: bytes) -> bytes:
        answer = responses.from_chat(orjson.loads(chat_answer), self.model, request=self.request)
        return orjson.dumps(answer)

    def translator(self) -> Translator:
        return responses.StreamTranslator(self.model, request=self.request)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"We could not parse the JSON body of your request: {exc}.") from None
    if not isinstance(payload, dict):
        raise BadRequest("The request body must be a JSON object.")
    return payload


def error_for(api: Api, error: ClientError) -> bytes:
    """The router's own refusal, in the client API's error shape."""
    if api is MESSAGES:
        return anthropic.error_body(error.status, error.message)
    return error.body()


def accept_foreign(api: Api, body: bytes) -> tuple[Call, Ingress]:
    """A Messages or Responses request as a chat call; BadRequest in that API's words."""
    if not body:
        raise BadRequest("The request body is empty.")
    payload = _json_object(body)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required", param="model")
    ingress: Ingress = (
        MessagesIngress(model, payload) if api is MESSAGES else ResponsesIngress(model, payload)
    )
    try:
        chat = anthropic.to_chat(payload) if api is MESSAGES else responses.to_chat(payload)
    except BadRequest as exc:
        # Not translatable (provider-side state, a PDF, a server tool): a provider that
        # serves this API itself may still take it. What routing and budgets read of it:
        ingress.untranslatable = exc
        chat = {
            key: value
            for key, value in payload.items()
            if key in ("model", "messages", "input", "tools", "stream", "temperature")
        }
        output = payload.get(ingress.max_key)
        if isinstance(output, int):
            chat["max_tokens"] = output
    stream = chat.get("stream") is True
    if stream:
        chat["stream_options"] = {"include_usage": True}  # the translators need the usage
    call = Call(api=CHAT, payload=chat, model=model, stream=stream, wants_usage=stream)
    return call, ingress


def count_tokens(body: bytes) -> tuple[str, bytes]:
    """``POST /v1/messages/count_tokens``, answered here: (model, the estimate), no
    upstream call."""
    payload = _json_object(body)
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required", param="model")
    return model, orjson.dumps(anthropic.count_tokens(payload))


def count_input_tokens(body: bytes) -> tuple[str | None, bytes]:
    """``POST /v1/responses/input_tokens``, answered here: (model, the estimate)."""
    payload = _json_object(body) if body else {}
    model = payload.get("model")
    counted = {k: v for k, v in payload.items() if k not in ("model",)}
    counted.setdefault("input", "")
    chat = responses.to_chat({**counted, "model": model if isinstance(model, str) else "x"})
    answer = {"object": "response.input_tokens", "input_tokens": estimate_tokens(chat)}
    return (model if isinstance(model, str) else None), orjson.dumps(answer)
