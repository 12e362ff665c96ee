"""Client-API adapters: other LLM APIs served on top of OpenAI chat completions.

Upstreams speak one dialect, chat completions. Clients written against
Anthropic's Messages API (:mod:`.anthropic`) or OpenAI's Responses API
(:mod:`.responses`) reach them through an adapter: pure translation, no
sockets, so each is tested by feeding it dicts. Every adapter has the same
four parts:

* ``to_chat(payload)``: the client's request as a chat completions request,
  or :class:`TranslationError` for a feature chat cannot carry;
* ``from_chat(answer, model)``: a whole chat completion as the client's answer;
* ``StreamTranslator``: chat completion chunks in (``feed``, one parsed chunk
  at a time), the client's SSE events out, then ``finish()`` at ``[DONE]``
  or ``error()`` when the upstream fails after the stream began;
* the client API's error shape.

A translation refuses rather than guesses: a feature whose loss would change
what the model is asked (a PDF, a server-side tool, provider-side state) is a
400 that names it; only hints whose loss changes no answer (prompt-cache
markers, service tiers) are dropped. Each adapter lists its limits in its
docstring.
"""

from __future__ import annotations

from modelroute.router.errors import BadRequest

__all__ = ["TranslationError"]


class TranslationError(BadRequest):
    """The request uses a feature the chat completions API cannot carry (a 400).

    ``param`` names the field, as the client's API would (``messages.2.content.0``,
    ``tools.1``). ``body()`` is OpenAI's shape, right for the Responses API;
    Anthropic clients get :func:`modelroute.router.adapters.anthropic.error_body`.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param=param)

