"""OpenAI's Responses API, served natively by the simulator, with its stored state.

``POST /v1/responses`` (whole and streamed), ``GET /v1/responses/{id}`` and
``DELETE /v1/responses/{id}``, as OpenAI serves them: the target a router
sends ``previous_response_id`` requests to must keep responses, and this one
does, in memory. The simulated model answers as on the chat route (see
:mod:`.sim_native`), through the router's own adapter
(:mod:`modelroute.router.adapters.responses`).

State, as OpenAI keeps it: every response is stored unless the request says
``store: false``, with its conversation (the input it was given, after the
conversation of its ``previous_response_id``, then its output), so a request
naming it continues from there; ``instructions`` are not carried over. An
unknown ``previous_response_id`` is a 400 (``previous_response_not_found``),
an unknown id on ``GET``/``DELETE`` a 404. At most :data:`KEEP` responses are
kept, the oldest dropped first; ``POST /sim/reset`` forgets them all.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from modelroute.router import sim_native
from modelroute.router.adapters import TranslationError, responses

if TYPE_CHECKING:
    from modelroute.router.sim import SimBehaviour, SimServer

__all__ = ["KEEP", "StoredResponses"]

KEEP = 10_000


class StoredResponses:
    """The Responses API's routes and the responses they stored."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._kept: OrderedDict[str, tuple[dict[str, Any], list[Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()

    def get(self, response_id: str) -> dict[str, Any] | None:
        kept = self._kept.get(response_id)
        return kept[0] if kept is not None else None

    def _store(self, response: dict[str, Any] | None, given: list[Any]) -> None:
        if response is None:
            return
        output = response.get("output")
        self._kept[response["id"]] = (response, [*given, *(output or [])])
        while len(self._kept) > self.keep:
            self._kept.popitem(last=False)

    async def create(
        self, sim: SimServer, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse:
        """``POST /v1/responses``."""
        body = await sim._admit_completion(request, behaviour)
        if not isinstance(body, dict):
            return body
        given = body.get("input")
        items: list[Any] = [{"role": "user", "content": given}] if isinstance(given, str) else []
        if isinstance(given, list):
            items = list(given)
        previous = body.get("previous_response_id")
        history: list[Any] = []
        if previous is not None:
            kept = self._kept.get(previous) if isinstance(previous, str) else None
            if kept is None:
                message = f"Previous response with id '{previous}' not found."
                return await sim._error(
                    request,
                    behaviour,
                    400,
                    message,
                    "previous_response_not_found",
                    "previous_response_id",
                )
            history = kept[1]
        conversation = [*history, *items]
        stateless = {key: value for key, value in body.items() if key != "previous_response_id"}
        if given is not None:
            stateless["input"] = conversation
        try:
            chat = responses.to_chat(stateless)
        except TranslationError as exc:
            return await sim._error(request, behaviour, 400, exc.message, None, exc.param)
        model = str(body["model"])
        store = body.get("store") is not False

        def whole(completion: dict[str, Any]) -> dict[str, Any]:
            answer = responses.from_chat(completion, model, request=body)
            if store:
                self._store(answer, conversation)
            return answer

        def translator(usage: dict[str, Any]) -> sim_native.Translator:
            return responses.StreamTranslator(model, request=body)

        def done(events: sim_native.Translator) -> None:
            if store and isinstance(events, responses.StreamTranslator):
                self._store(events.response, conversation)

        return await sim_native.answer(
            sim, request, behaviour, chat, whole=whole, translator=translator, done=done
        )

    async def item(
        self, sim: SimServer, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse:
        """``GET`` or ``DELETE /v1/responses/{id}``."""
        admitted = await sim._admit(request, behaviour)
        if not isinstance(admitted, dict):
            return admitted
        response_id = request.path.removeprefix("/v1/responses/")
        kept = self._kept.get(response_id)
        if kept is None:
            message = f"Response with id '{response_id}' not found."
            return await sim._error(request, behaviour, 404, message, None, None)
        if request.method == "DELETE":
            del self._kept[response_id]
            deleted = {"id": response_id, "object": "response", "deleted": True}
            return await sim._json(request, behaviour, deleted)
        return await sim._json(request, behaviour, kept[0])
