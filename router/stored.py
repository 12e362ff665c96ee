"""Responses kept by the provider (OpenAI's Responses API): where each one lives.

A Responses answer from a provider that serves that API natively may be
stored there (``store`` unset or true): a later request naming it
(``previous_response_id``) and ``GET``/``DELETE /v1/responses/{id}`` must
reach the same provider, with the same key. The router remembers which
endpoint answered each response id (an LRU, per router pod) and pins such
requests to that provider, that endpoint first; an id it has not seen (made
through another pod, or before a restart) is looked for at each endpoint
that serves Responses, in order, until one does not answer 404.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict

import orjson

from modelroute.router.answers import JSON
from modelroute.router.errors import AttemptFailed, NotFound, error_body
from modelroute.router.headers import to_client
from modelroute.router.http.client import UpstreamClient
from modelroute.router.http.server import Request, ResponseWriter
from modelroute.router.table import Endpoint, RoutingTable

PREFIXES = ("/v1/responses/", "/responses/")
_PATH = re.compile(r"[A-Za-z0-9_\-]{1,200}(/input_items)?")
MAX_REMEMBERED = 100_000


class ResponseHomes:
    """Response id → (provider, endpoint key) that answered it, least recent out."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._homes: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._limit = limit

    def remember(self, response_id: object, provider: str, endpoint: str) -> None:
        if not isinstance(response_id, str) or not response_id:
            return
        self._homes[response_id] = (provider, endpoint)
        self._homes.move_to_end(response_id)
        if len(self._homes) > self._limit:
            self._homes.popitem(last=False)

    def get(self, response_id: str) -> tuple[str, str] | None:
        return self._homes.get(response_id)

    def forget(self, response_id: str) -> None:
        self._homes.pop(response_id, None)


def answer_id(answer: bytes) -> object:
    try:
        doc = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    return doc.get("id") if isinstance(doc, dict) else None


def _endpoints(table: RoutingTable, home: tuple[str, str] | None) -> list[Endpoint]:
    """Endpoints that serve Responses natively: the remembered one first."""
    serving = {
        target.provider
        for route in table.routes.values()
        for target in route.targets
        if "responses" in target.apis
    }
    found = [e for e in table.endpoints if e.provider in serving]
    if home is not None:
        found.sort(key=lambda e: (e.key != home[1], e.provider != home[0], not e.local))
    else:
        found.sort(key=lambda e: not e.local)
    return found


async def forward_stored(
    table: RoutingTable,
    client: UpstreamClient,
    homes: ResponseHomes,
    request: Request,
    out: ResponseWriter,
) -> None:
    """``GET``/``DELETE /v1/responses/{id}[/input_items]`` at the provider holding it."""
    prefix = next(p for p in PREFIXES if request.path.startswith(p))
    rest = request.path[len(prefix) :]
    if not _PATH.fullmatch(rest):
        error = NotFound(f"No response found at {request.path}.")
        out.send(error.status, [JSON], error.body())
        return
    response_id = rest.split("/", 1)[0]
    timeouts = table.spec.resilience.timeouts
    status, headers, body = (
        404,
        [JSON],
        error_body(
            f"No response found with id '{response_id}'.", "invalid_request_error", param="id"
        ),
    )
    query = b"?" + request.query if request.query else b""
    for endpoint in _endpoints(table, homes.get(response_id)):
        head = (
            b"%s %s/responses/%s%s HTTP/1.1\r\nhost: %s\r\n%s%saccept-encoding: identity\r\ncontent-length: 0\r\n\r\n"
            % (
                request.method,
                endpoint.path_prefix.encode(),
                rest.encode(),
                query,
                endpoint.origin.host_header,
                endpoint.auth_header,
                request.forward,
            )
        )
        try:
            response = await client.request(
                endpoint.origin,
                head,
                b"",
                connect_timeout=timeouts.connect,
                deadline=asyncio.get_running_loop().time() + timeouts.first_token,
            )
            body = await response.read()
            response.close()
        except (AttemptFailed, TimeoutError):  # an endpoint that cannot answer: the next
            continue
        status, headers = response.status, to_client(response.headers)
        if status != 404:
            if request.method == b"DELETE" and status < 300:
                homes.forget(response_id)
            else:
                homes.remember(response_id, endpoint.provider, endpoint.key)
            break
    out.send(status, headers, body)
