"""Anthropic's Messages API, served natively by the simulator.

``POST /v1/messages`` (whole and streamed) and ``POST /v1/messages/count_tokens``,
as Anthropic serves them: so a test can put the ``anthropic`` SDK in front of
a target that speaks Messages itself, and compare it with the router's
translation. The simulated model answers as on the chat route (see
:mod:`.sim_native`), through the router's own adapter
(:mod:`modelroute.router.adapters.anthropic`), so the two cannot drift apart.

Anthropic's ways: the key may come as ``x-api-key``; errors are
``{"type": "error", "error": {"type", "message"}}`` with Anthropic's type for
the status (``fail_status: 529`` is its ``overloaded_error``); a stream starts
with ``message_start`` carrying the input tokens, ends with ``message_delta``
(stop reason, usage) and ``message_stop``, or with an ``error`` event
(``stream_error_before_content``); a request the chat API could not carry
(documents, server tools, ...) is a 400 naming it, as the router will answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from modelroute.router import sim_native
from modelroute.router.adapters import TranslationError, anthropic

if TYPE_CHECKING:
    from modelroute.router.sim import SimBehaviour, SimServer

__all__ = ["count_tokens", "create"]


async def create(
    sim: SimServer, request: web.BaseRequest, behaviour: SimBehaviour
) -> web.StreamResponse:
    """``POST /v1/messages``."""
    body = await sim._admit_completion(request, behaviour)
    if not isinstance(body, dict):
        return body
    try:
        chat = anthropic.to_chat(body)
    except TranslationError as exc:
        return await sim._error(request, behaviour, 400, exc.message, None, exc.param)
    model = str(body["model"])

    def translator(usage: dict[str, Any]) -> sim_native.Translator:
        details = usage.get("prompt_tokens_details") or {}
        fresh = usage["prompt_tokens"] - details.get("cached_tokens", 0)
        return anthropic.StreamTranslator(model, input_tokens=fresh)

    return await sim_native.answer(
        sim,
        request,
        behaviour,
        chat,
        whole=lambda completion: anthropic.from_chat(completion, model),
        translator=translator,
    )


async def count_tokens(
    sim: SimServer, request: web.BaseRequest, behaviour: SimBehaviour
) -> web.StreamResponse:
    """``POST /v1/messages/count_tokens``: the prompt's tokens as ``create`` would bill them."""
    body = await sim._admit(request, behaviour)
    if not isinstance(body, dict):
        return body
    try:
        chat = anthropic.to_chat({**body, "max_tokens": 1})  # the count needs no limit
    except TranslationError as exc:
        return await sim._error(request, behaviour, 400, exc.message, None, exc.param)
    _, prompt_tokens = sim._chat_prompt(chat)
    return await sim._json(request, behaviour, {"input_tokens": prompt_tokens})
