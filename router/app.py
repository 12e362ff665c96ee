"""The router's HTTP surface: which path does what, for one routing table at a time.

Proxied OpenAI paths go to :class:`~.proxy.Proxy`; the few admin paths
(health, readiness, metrics, the model list and each model) are answered here directly. The
OpenAI paths are served with and without the ``/v1`` prefix, because clients
differ in whether their base URL includes it.

With an admin port (``modelroute router --admin-port``, which the operator always
sets), ``/healthz``, ``/readyz``, ``/metrics`` and ``/status`` are answered by
:meth:`RouterApp.handle_admin` on that port only, and are unknown paths (404) on
the API port that clients reach.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import orjson

from modelroute.router import cors, redact, stored
from modelroute.router.accept import CHAT, COMPLETIONS, EMBEDDINGS, Api
from modelroute.router.answers import JSON
from modelroute.router.auth import client_token
from modelroute.router.errors import MethodNotAllowed, ModelNotFound, NotFound, Unauthorized
from modelroute.router.http.client import UpstreamClient
from modelroute.router.http.server import Request, ResponseWriter
from modelroute.router.ingress import MESSAGES, RESPONSES
from modelroute.router.metrics import Metrics
from modelroute.router.probes import HealthMonitor
from modelroute.router.proxy import Proxy
from modelroute.router.table import RoutingTable

log = logging.getLogger("modelroute.router")

Endpoint = Callable[[Request, ResponseWriter], Awaitable[None]]
_OK = b'{"status":"ok"}'
_DRAINING = b'{"status":"draining"}'
_METRICS_TYPE = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
_MODEL_PREFIXES = ("/v1/models/", "/models/")  # GET /v1/models/{id}: ids may hold "/"
ADMIN_PATHS = ("/healthz", "/readyz", "/metrics", "/status")


class RouterApp:
    """Dispatches requests; holds the current routing table and the draining flag."""

    def __init__(
        self,
        table: RoutingTable,
        client: UpstreamClient,
        metrics: Metrics,
        health: HealthMonitor,
        admin_port: bool = False,
    ) -> None:
        self.table = table
        self.metrics = metrics
        self.health = health
        self.draining = False
        self.proxy = Proxy(lambda: self.table, client, metrics)
        self._paths: dict[str, tuple[bytes, Endpoint]] = {
            "/healthz": (b"GET", self._healthz),
            "/readyz": (b"GET", self._readyz),
            "/metrics": (b"GET", self._metrics),
            "/status": (b"GET", self._status),
        }
        for path, api in (
            ("/chat/completions", CHAT),
            ("/completions", COMPLETIONS),
            ("/embeddings", EMBEDDINGS),
            ("/messages", MESSAGES),  # Anthropic's SDK: base URL without /v1
            ("/responses", RESPONSES),
        ):
            endpoint = self._proxied(api)
            self._paths[path] = self._paths["/v1" + path] = (b"POST", endpoint)
        self._paths["/models"] = self._paths["/v1/models"] = (b"GET", self._models)
        count = (b"POST", self.proxy.count_tokens)
        self._paths["/messages/count_tokens"] = self._paths["/v1/messages/count_tokens"] = count
        count = (b"POST", self.proxy.count_input_tokens)
        self._paths["/responses/input_tokens"] = self._paths["/v1/responses/input_tokens"] = count
        # On their own listener (handle_admin) when there is an admin port; not for clients.
        self._admin = {path: self._paths.pop(path) for path in ADMIN_PATHS} if admin_port else {}

    def _proxied(self, api: Api) -> Endpoint:
        handle = self.proxy.handle

        async def endpoint(request: Request, out: ResponseWriter) -> None:
            await handle(request, out, api)

        return endpoint

    async def handle(self, request: Request, out: ResponseWriter) -> None:
        cors_settings = self.table.spec.server.cors
        if cors_settings is not None:
            origin = request.headers.get(b"origin")
            if origin is not None and cors.allowed(cors_settings, origin):
                if request.method == b"OPTIONS":  # a preflight: nothing is proxied
                    requested = request.headers.get(b"access-control-request-headers")
                    out.send(204, cors.preflight_headers(cors_settings, origin, requested), b"")
                    return
                out.extra = cors.answer_headers(origin)
        entry = self._paths.get(request.path)
        if entry is None and request.path.startswith(_MODEL_PREFIXES):
            entry = (b"GET", self._model)
        elif entry is None and request.path.startswith(stored.PREFIXES):
            method = b"DELETE" if request.method == b"DELETE" else b"GET"
            entry = (method, self.proxy.stored_response)
        await self._dispatch(entry, request, out)

    async def handle_admin(self, request: Request, out: ResponseWriter) -> None:
        """The admin port: health, readiness, metrics and status, nothing else."""
        await self._dispatch(self._admin.get(request.path), request, out)

    async def _dispatch(
        self, entry: tuple[bytes, Endpoint] | None, request: Request, out: ResponseWriter
    ) -> None:
        if entry is None:
            error = NotFound(f"Unknown request URL: {request.method.decode()} {request.path}.")
            out.send(error.status, [JSON], error.body())
            return
        method, endpoint = entry
        if request.method != method and not (method == b"GET" and request.method == b"HEAD"):
            refusal = MethodNotAllowed(
                f"{request.method.decode()} is not allowed on {request.path}; use {method.decode()}."
            )
            out.send(refusal.status, [JSON, (b"allow", method)], refusal.body())
            return
        await endpoint(request, out)

    async def _healthz(self, request: Request, out: ResponseWriter) -> None:
        out.send(200, [JSON], _OK)

    async def _readyz(self, request: Request, out: ResponseWriter) -> None:
        if self.draining:
            out.send(503, [JSON], _DRAINING)
        else:
            out.send(200, [JSON], _OK)

    async def _metrics(self, request: Request, out: ResponseWriter) -> None:
        out.send(200, [_METRICS_TYPE], self.metrics.exposition())

    async def _status(self, request: Request, out: ResponseWriter) -> None:
        """Each endpoint's health as the router sees it, for humans and scripts."""
        table = self.table
        now = time.monotonic()
        endpoints = []
        for endpoint in table.endpoints:
            health = endpoint.health
            endpoints.append(
                {
                    "provider": endpoint.provider,
                    "region": endpoint.region,
                    "baseURL": redact.safe_url(endpoint.base_url),
                    "local": endpoint.local,
                    "state": health.state(now),
                    "ewmaMs": round(health.ewma * 1000, 3),
                    "inFlight": health.in_flight,
                    "consecutiveFailures": health.consecutive_failures,
                    "ejections": health.ejections,
                    "ejectedForS": round(max(0.0, health.ejected_until - now), 3),
                    "coolingForS": round(max(0.0, health.cooldown_until - now), 3),
                    "probesFailing": health.probe_unhealthy,
                    "lastFailure": health.last_reason or None,
                }
            )
        body = {
            "route": table.route.name,
            "region": table.region,
            "configHash": table.config_hash,
            "draining": self.draining,
            "endpoints": endpoints,
        }
        if self.proxy.state is not None:  # budgets, rate limits, cache (spec.redis)
            body["sharedState"] = self.proxy.state.status()
        out.send(200, [JSON], orjson.dumps(body))

    def _refused(self, request: Request, out: ResponseWriter) -> bool:
        """The model endpoints take the client keys the proxied paths take."""
        table = self.table
        if table.client_keys and table.client_keys.identify(client_token(request.headers)) is None:
            error = Unauthorized("Incorrect or missing API key.")
            out.send(error.status, [JSON], error.body())
            return True
        return False

    async def _models(self, request: Request, out: ResponseWriter) -> None:
        if not self._refused(request, out):
            out.send(200, [JSON], self.table.models_body)

    async def _model(self, request: Request, out: ResponseWriter) -> None:
        """``GET /v1/models/{id}``: the rest of the path, percent-decoded, is the id (SDKs
        send ``deepseek-ai%2FDeepSeek-V4-Flash``; a raw ``/`` is taken as well)."""
        if self._refused(request, out):
            return
        prefix = next(p for p in _MODEL_PREFIXES if request.path.startswith(p))
        name = unquote(request.path[len(prefix) :], errors="replace")
        if name not in self.table.routes:
            error = ModelNotFound(f"The model '{name}' does not exist", param="model")
            out.send(error.status, [JSON], error.body())
            return
        out.send(200, [JSON], orjson.dumps(self.table.model_objects[name]))
