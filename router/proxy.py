"""Proxying one OpenAI API call: accept → resolve → plan → attempt → respond → record.

This module strings the steps together and owns the attempt loop. Each
candidate of the plan (:mod:`.plan`) is admitted by its endpoint's health
(:mod:`.health`) and gets one attempt, until one answers, the retry policy or
the retry budget says stop, or the plan runs out; when more attempts are
allowed than there are candidates, the loop plans again and the same
endpoint is retried after a jittered exponential backoff. What counts as
retryable, and what the client then sees, is the failure model drawn in
:mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from time import monotonic, perf_counter, time
from typing import Any

import orjson

from modelroute.router import redact
from modelroute.router.accept import CHAT, Api, Call, accept, json_content_type
from modelroute.router.admit import Gate, Hold
from modelroute.router.affinity import Sessions, session_key
from modelroute.router.answers import (
    JSON,
    check_answer,
    classify,
    client_error,
    parse_retry_after,
    relayed,
)
from modelroute.router.auth import ANONYMOUS, client_token
from modelroute.router.body import Layout, splice, usage_of
from modelroute.router.cache import CACHE_HEADER, Entry, cache_directives, cache_key, cacheable
from modelroute.router.errors import (
    AttemptFailed,
    BadRequest,
    BadUpstreamAnswer,
    ClientError,
    ModelNotFound,
    OverLimit,
    RateLimited,
    Retryable,
    StreamFailedEarly,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamAnswered,
    UpstreamRejected,
    UpstreamReset,
    UpstreamTimeout,
    error_body,
)
from modelroute.router.filters import context_exceeded, needs_of, screen
from modelroute.router.headers import header, to_client
from modelroute.router.health import Admission, EndpointHealth, may_eject
from modelroute.router.http.client import UpstreamClient, UpstreamResponse
from modelroute.router.http.server import Request, ResponseWriter
from modelroute.router.ingress import (
    MESSAGES,
    RESPONSES,
    Ingress,
    accept_foreign,
    count_input_tokens,
    count_tokens,
    error_for,
)
from modelroute.router.metrics import OTHER, Metrics
from modelroute.router.native_stream import (
    native_interruption,
    open_native_stream,
    relay_native,
)
from modelroute.router.plan import (
    Candidate,
    CandidateQueue,
    panic_candidate,
    plan,
    same_target_wait,
)
from modelroute.router.replay import Gathered, stream_of
from modelroute.router.resolve import resolve
from modelroute.router.state.shared import SharedState, default_prefix
from modelroute.router.stored import ResponseHomes, answer_id, forward_stored
from modelroute.router.stream import (
    StreamState,
    Usage,
    interruption_event,
    open_stream,
    relay_block,
    stream_end_failure,
)
from modelroute.router.table import (
    ANTHROPIC_VERSION,
    MESSAGES_PATH,
    Endpoint,
    Route,
    RoutingTable,
    Target,
)
from modelroute.spec.model import Hedging

log = logging.getLogger("modelroute.access")
health_log = logging.getLogger("modelroute.health")

_ID_PREFIX = os.urandom(6).hex().encode()
_ids = itertools.count(1)

Headers = list[tuple[bytes, bytes]]
COST_HEADER = b"x-modelroute-max-cost-usd"
# Failures after which the upstream did (or may have done) the work: trying the same
# endpoint again spends the retry budget.
_COSTLY = frozenset({"timeout", "reset", "5xx"})
_API_NAMES = {"/chat/completions": "chat", "/completions": "completions", "/embeddings": "embeddings"}


def new_request_id() -> bytes:
    """Unique per process and across pods, without uuid4's cost on every request."""
    return b"mr-%s-%d" % (_ID_PREFIX, next(_ids))


def prefer_affine(candidates: list[Candidate], endpoint_key: str, now: float) -> None:
    """Move the conversation's last endpoint to the front, if it is planned and healthy
    (not half-open, not cooling down): affinity reorders a plan, it never adds to it."""
    for i, candidate in enumerate(candidates):
        if candidate.endpoint.key == endpoint_key:
            if i > 0 and candidate.endpoint.health.state(now) == "healthy":
                candidates.insert(0, candidates.pop(i))
            return


def hedge_delay(policy: Hedging, candidate: Candidate) -> float | None:
    """How long to wait before hedging, or None (percentile unknown yet)."""
    after = policy.after
    if after.startswith("p"):
        return candidate.endpoint.health.percentile(int(after[1:]) / 100)
    return float(after[:-2]) / 1000 if after.endswith("ms") else float(after[:-1])


@dataclass(slots=True)
class RetryBudget:
    """Envoy's retry budget: retries in flight bounded by a share of requests in flight."""

    requests: int = 0
    retries: int = 0

    def allows(self, percent: int, minimum: int) -> bool:
        return self.retries < max(minimum, self.requests * percent / 100)


@dataclass(slots=True)
class Exchange:
    """One client request on its way through the attempt loop."""

    request: Request
    out: ResponseWriter
    table: RoutingTable
    route: Route
    call: Call
    request_id: bytes
    forward: bytes  # client headers to pass upstream, serialised
    strip_usage: bool
    bodies: dict[str, bytes] = field(default_factory=dict)
    attempts: int = 0
    upstream_time: float = 0.0
    last: Candidate | None = None
    cache_key: bytes | None = None  # set when the answer may be stored
    excluded: set[int] = field(default_factory=set)  # chain positions not to try (filters)
    notes: list[tuple[bytes, bytes]] = field(default_factory=list)  # tier, skipped, degraded
    tier: str | None = None  # for a tiered model: the tier being tried
    lower: list[tuple[str, Route]] = field(default_factory=list)  # tiers to degrade to
    earlier_attempts: int = 0  # attempts made in tiers degraded from
    session: bytes | None = None  # the conversation's key, where affinity applies
    session_tier: str | None = None  # the tier to remember for it (before degradation)
    affine: str | None = None  # Endpoint.key that answered this conversation last
    client: str = ANONYMOUS  # the client key's name: the tenant of budgets, limits, cache
    cost: float | None = None  # USD the answer cost, from its usage (None: unknown)
    used_tokens: int | None = None  # prompt plus completion tokens, from its usage
    answered: bool = False  # an upstream's answer reached the client
    gather: Gathered | None = None  # a cacheable stream, folded as it is relayed
    ingress: Ingress | None = None  # a Messages or Responses client, served through chat
    pin: str | None = None  # the only provider that may answer (it holds the request's state)

    def serves(self, target: Target) -> bool:
        """Whether ``target``'s provider can take this request: its API natively, or
        (for a Messages or Responses client) chat, unless the request cannot be
        translated."""
        ingress = self.ingress
        if ingress is None:
            return _API_NAMES[self.call.api.path] in target.apis
        if ingress.name in target.apis:
            return True
        return ingress.untranslatable is None and "chat" in target.apis

    def native(self, target: Target) -> bool:
        """Whether ``target`` takes the client's request as it is (Messages, Responses)."""
        return self.ingress is not None and self.ingress.name in target.apis

    def native_api(self, target: Target) -> str | None:
        """The client's API (messages, responses) when ``target`` serves it as it is."""
        ingress = self.ingress
        return ingress.name if ingress is not None and ingress.name in target.apis else None

    def translating(self, target: Target) -> Ingress | None:
        """The translation ``target``'s chat answers need on their way to the client:
        None for an OpenAI client, and for a target that speaks the client's API."""
        ingress = self.ingress
        return ingress if ingress is not None and ingress.name not in target.apis else None

    def body_for(self, target: Target) -> bytes:
        """The request body for ``target``: the client's, with its upstream model name.

        Re-serialised with orjson, which was measured cheaper than editing bytes
        in place even for a 1 MiB image prompt (36 µs against 470 µs for the
        search alone): the parse that ``accept`` needs anyway is what costs.
        """
        if self.ingress is not None and self.ingress.name in target.apis:
            key = "\0native\0" + target.model
            body = self.bodies.get(key)
            if body is None:
                cap = self.call.payload.get("max_tokens")
                body = self.bodies[key] = self.ingress.native_body(target.model, cap)
            return body
        body = self.bodies.get(target.model)
        if body is None:
            if self.call.layout is not None:
                body = self._spliced(self.call.layout, target)
            else:
                self.call.payload["model"] = target.model
                body = orjson.dumps(self.call.payload)
            self.bodies[target.model] = body
        return body

    def _spliced(self, layout: Layout, target: Target) -> bytes:
        """A large body edited in place: its model, and the usage request for streams."""
        start, end = layout.fields["model"]
        edits = [(start, end, orjson.dumps(target.model))]
        if self.strip_usage:  # the router asks the upstream for usage (see _exchange_for)
            options = layout.fields.get("stream_options")
            usage = orjson.dumps(self.call.payload["stream_options"])
            if options is not None:
                edits.append((options[0], options[1], usage))
            else:
                edits.append((layout.close, layout.close, b',"stream_options":' + usage))
        return splice(self.request.body, edits)

    def head_for(self, candidate: Candidate, body: bytes) -> bytes:
        path = self.call.api.path
        extra = b""
        if self.ingress is not None and self.ingress.name in candidate.target.apis:
            path = self.ingress.api.path
            if path == MESSAGES_PATH and b"anthropic-version" not in self.request.headers:
                extra = ANTHROPIC_VERSION
        return (
            candidate.endpoint.heads[path]
            + self.forward
            + extra
            + b"accept-encoding: identity\r\ncontent-length: %d\r\n\r\n" % len(body)
        )


class Proxy:
    """Serves the proxied API paths against the current routing table."""

    def __init__(
        self,
        table: Callable[[], RoutingTable],
        client: UpstreamClient,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self._table = table
        self._client = client
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()
        self._rng = rng or random.Random()
        self.budget = RetryBudget()
        self._sessions = Sessions()
        # The in-flight gauge reads the budget's count when scraped: no lock per request.
        metrics.in_flight.set_function(lambda: float(self.budget.requests))
        self._adopted: RoutingTable | None = None
        self.state: SharedState | None = None  # budgets, limits, cache: when any is used
        self._gate: Gate | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self.homes = ResponseHomes()  # stored Responses: where each one lives
        # Shared state starts with the router, not with its first request: its leases
        # must be held in Redis before traffic can need them.
        self.adopt(table())

    def adopt(self, table: RoutingTable) -> None:
        """A new routing table: keep the shared state (its Redis connection, leases,
        cache) when its settings did not change, else make it anew."""
        self._adopted = table
        spec = table.spec
        wanted = bool(spec.budgets or spec.rate_limits or spec.cache.enabled)
        route = table.route
        prefix = (
            spec.redis.key_prefix
            if spec.redis is not None and spec.redis.key_prefix is not None
            else default_prefix(route.namespace, route.name)
        )
        state = self.state
        if state is not None and (
            not wanted or state.settings != spec.redis or state.prefix != prefix
        ):
            task = self._loop.create_task(state.close())
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
            state = self.state = None
        if wanted and state is None:
            try:
                state = SharedState(
                    spec.redis, prefix, table.secrets_dir, self._metrics, lambda: self._budgets()
                )
            except (LookupError, ValueError) as exc:  # a Secret gone since the config loaded
                health_log.error("redis is not usable, state stays per pod: %s", exc)
                state = SharedState(
                    None, prefix, table.secrets_dir, self._metrics, lambda: self._budgets()
                )
            self.state = state
            state.start()
        if state is not None and spec.cache.enabled:
            state.cache_settings(spec.cache)
        elif state is not None:
            state.memory = None
        self._gate = (
            Gate(spec, state, self._metrics)
            if state is not None and (spec.budgets or spec.rate_limits)
            else None
        )

    def _budgets(self) -> tuple[Any, ...]:
        return self._adopted.spec.budgets if self._adopted is not None else ()

    async def close(self) -> None:
        if self.state is not None:
            await self.state.close()

    # --- one request ----------------------------------------------------------------

    async def handle(self, request: Request, out: ResponseWriter, api: Api) -> None:
        table = self._table()
        metrics = self._metrics
        self.budget.requests += 1
        request_id = request.headers.get(b"x-request-id") or new_request_id()
        route: Route | None = None
        code = 500
        client = ANONYMOUS
        hold: Hold | None = None
        gate: Gate | None = None
        ex: Exchange | None = None
        if table is not self._adopted:
            self.adopt(table)
        try:
            if table.client_keys:
                name = table.client_keys.identify(client_token(request.headers))
                if name is None:
                    raise Unauthorized("Incorrect or missing API key.")
                client = name
            if not json_content_type(request.headers.get(b"content-type")):
                raise UnsupportedMediaType(
                    "Unsupported content type: the request body must be sent as "
                    "'Content-Type: application/json'.",
                )
            ingress = None
            if api is MESSAGES or api is RESPONSES:  # (identity: Api compares by value)
                call, ingress = accept_foreign(api, request.body)
            else:
                call = accept(api, request.body)
            route = table.routes.get(call.model)
            if route is None:
                raise ModelNotFound(
                    f"The model `{call.model}` does not exist or you do not have access to it."
                )
            ex = self._exchange_for(request, out, table, route, call, request_id)
            ex.client, ex.ingress = client, ingress
            if route.tiers is not None or route.sticky or route.checked:
                self._resolve(ex, route)
            elif COST_HEADER in request.headers:
                self._screen(ex, route)  # a plain chain: only a ceiling may apply
            if ex.route.api_limited or ingress is not None:
                self._check_apis(ex)
                if ingress is not None and ingress.name == "responses":
                    self._pin_to_state(ex, ingress)
            # The gate that admits is the one that releases: a reload (by a request that
            # comes while this one waits on Redis) may replace self._gate and self.state.
            gate = self._gate
            if gate is not None:
                hold = await gate.admit(ex, client, route.name)
            if self.state is not None and self.state.memory is not None:
                code = await self._from_cache(ex, route.name)
                if code:
                    return
            code = await (self._route(ex) if ex.tier is None else self._route_tiers(ex, route))
        except ClientError as exc:
            code = exc.status
            ids = [(b"x-modelroute-request-id", request_id), (b"x-request-id", request_id)]
            extra = exc.headers if isinstance(exc, OverLimit) else []
            out.send(code, [JSON, *extra, *ids], error_for(api, exc))
        except asyncio.CancelledError:
            code = 499  # the client went away (nginx's convention), not a server error
            raise
        finally:
            self.budget.requests -= 1
            if hold is not None and gate is not None and ex is not None:
                # A request sent upstream and then cut off (499) was billed: it costs
                # its reservation, as an answer without usage does.
                sent = code == 499 and ex.attempts + ex.earlier_attempts > 0
                await gate.release(hold, ex.cost, ex.used_tokens, ex.answered or sent)
            if table.client_keys:
                self._count_client(client, code, ex)
            elapsed = perf_counter() - request.received_at
            if route is not None:
                route.duration.observe(elapsed)
            metrics.count_request(route.name if route is not None else OTHER, code)
            if table.spec.server.access_log:
                log.info(
                    "%s %s model=%s code=%d ms=%.1f id=%s",
                    request.method.decode(),
                    request.path,
                    route.name if route is not None else "-",
                    code,
                    elapsed * 1000,
                    request_id.decode("latin-1"),
                )

    async def count_tokens(self, request: Request, out: ResponseWriter) -> None:
        """``POST /v1/messages/count_tokens``: an estimate made here, no upstream call."""
        table = self._table()
        try:
            if table.client_keys and table.client_keys.identify(client_token(request.headers)) is None:
                raise Unauthorized("Incorrect or missing API key.")
            model, answer = count_tokens(request.body)
            if model not in table.routes:
                raise ModelNotFound(f"model: {model}")
            out.send(200, [JSON], answer)
        except ClientError as exc:
            out.send(exc.status, [JSON], error_for(MESSAGES, exc))

    async def count_input_tokens(self, request: Request, out: ResponseWriter) -> None:
        """``POST /v1/responses/input_tokens``: an estimate made here, no upstream call."""
        table = self._table()
        try:
            if table.client_keys and table.client_keys.identify(client_token(request.headers)) is None:
                raise Unauthorized("Incorrect or missing API key.")
            model, answer = count_input_tokens(request.body)
            if model is not None and model not in table.routes:
                raise ModelNotFound(
                    f"The model `{model}` does not exist or you do not have access to it."
                )
            out.send(200, [JSON], answer)
        except ClientError as exc:
            out.send(exc.status, [JSON], exc.body())

    def _exchange_for(
        self,
        request: Request,
        out: ResponseWriter,
        table: RoutingTable,
        route: Route,
        call: Call,
        request_id: bytes,
    ) -> Exchange:
        strip_usage = False
        if call.stream and not call.wants_usage:
            options = call.payload.get("stream_options")
            call.payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
            strip_usage = True
        forward = request.forward + b"x-request-id: " + request_id + b"\r\n"
        return Exchange(request, out, table, route, call, request_id, forward, strip_usage)

    def _resolve(self, ex: Exchange, model: Route) -> None:
        """For a tiered, filtered or sticky model: its conversation, its tier and chain,
        and the targets the filters leave out."""
        session_id = session = None
        headers, payload = ex.request.headers, ex.call.payload
        if model.tiers is not None or model.sticky:
            session_id = session_key(headers, payload)
            if session_id is not None:
                session = self._sessions.get(session_id, monotonic())
        resolution = resolve(model, payload, headers, session.tier if session else None)
        ex.route = resolution.route
        if resolution.tier is not None:
            ex.tier, ex.lower = resolution.tier, resolution.lower
        if session_id is not None:
            ex.session, ex.session_tier = session_id, resolution.tier
            ex.affine = session.endpoint if session else None
        self._screen(ex, model)

    def _pin_to_state(self, ex: Exchange, ingress: Ingress) -> None:
        """A request continuing a stored response goes where that response lives."""
        previous = ingress.request.get("previous_response_id")
        home = self.homes.get(previous) if isinstance(previous, str) else None
        if home is not None:
            ex.pin, ex.affine = home

    async def stored_response(self, request: Request, out: ResponseWriter) -> None:
        """``GET``/``DELETE /v1/responses/{id}``: at the provider that holds it."""
        table = self._table()
        if table.client_keys and table.client_keys.identify(client_token(request.headers)) is None:
            error = Unauthorized("Incorrect or missing API key.")
            out.send(error.status, [JSON], error.body())
            return
        await forward_stored(table, self._client, self.homes, request, out)

    @staticmethod
    def _check_apis(ex: Exchange) -> None:
        """A 400, before anything is spent, when no target of the chosen chain can take
        this request: its API is served by none, natively or through chat."""
        if ex.route.tiers is not None or any(ex.serves(t) for t in ex.route.targets):
            return
        if ex.ingress is not None and ex.ingress.untranslatable is not None:
            raise ex.ingress.untranslatable
        api = ex.ingress.api.path if ex.ingress is not None else ex.call.api.path
        raise BadRequest(
            f"No target of model `{ex.route.name}` serves {api}: see providers[].apis.",
            param="model",
            code="unsupported_api",
        )

    def _screen(self, ex: Exchange, model: Route) -> None:
        """Leave out the targets this request cannot use (filters); a tiered model whose
        tier has none left falls to the next tier down, else the client gets a 400."""
        raw = ex.request.headers.get(COST_HEADER)
        ceiling = model.max_cost if model.max_cost is not None else ex.route.max_cost
        if raw is not None:
            try:
                ceiling = float(raw)
            except ValueError:
                ceiling = math.nan
            if not math.isfinite(ceiling) or ceiling < 0:
                raise BadRequest(
                    "x-modelroute-max-cost-usd must be a non-negative number of US dollars.",
                    param="x-modelroute-max-cost-usd",
                )
        while True:
            chain = ex.route
            if not chain.checked and ceiling is None:
                return
            screening = screen(chain, needs_of(ex.call, ex.request.body), ceiling)
            for entry in screening.skipped:
                target, _, reason = entry.rpartition("=")
                self._metrics.skipped_targets.labels(chain.name, target, reason).inc()
            if len(screening.excluded) < len(chain.targets):
                ex.excluded = screening.excluded
                if screening.skipped:
                    ex.notes.append(
                        (b"x-modelroute-skipped", ", ".join(screening.skipped).encode())
                    )
                return
            if ex.lower:
                self._degrade(ex, model)
                continue
            if (
                screening.cheapest is not None
                and ceiling is not None
                and all(entry.endswith("=cost-ceiling") for entry in screening.skipped)
            ):
                raise BadRequest(
                    f"No target of model `{model.name}` fits the cost ceiling of "
                    f"{ceiling:g} USD; the cheapest worst-case estimate is "
                    f"{screening.cheapest:.6f} USD.",
                    param="x-modelroute-max-cost-usd",
                    code="cost_ceiling_exceeded",
                )
            raise BadRequest(
                f"No target of model `{model.name}` can serve this request: "
                f"{', '.join(screening.skipped)}.",
                param="messages",
                code="no_capable_target",
            )

    def _degrade(self, ex: Exchange, model: Route) -> None:
        """Move a tiered request to the next tier down."""
        tier, route = ex.lower.pop(0)
        chosen = next((v for k, v in ex.notes if k == b"x-modelroute-degraded"), None)
        first = chosen.split(b"->")[0] if chosen else (ex.tier or "").encode()
        ex.notes = [
            (k, v)
            for k, v in ex.notes
            if k not in (b"x-modelroute-degraded", b"x-modelroute-skipped")
        ]
        ex.notes.append((b"x-modelroute-degraded", first + b"->" + tier.encode()))
        self._metrics.degraded.labels(model.name, ex.tier or "", tier).inc()
        ex.tier, ex.route = tier, route
        ex.excluded = set()
        ex.earlier_attempts += ex.attempts
        ex.attempts, ex.last = 0, None

    async def _route_tiers(self, ex: Exchange, model: Route) -> int:
        """Route to the chosen chain; a tiered model falls to lower tiers that can answer."""
        if ex.tier is not None:
            ex.notes.append((b"x-modelroute-tier", ex.tier.encode()))
        while True:
            try:
                return await self._route(ex)
            except _Degrade:
                self._degrade(ex, model)
                self._screen(ex, model)

    async def _from_cache(self, ex: Exchange, model: str) -> int:
        """Answer from the cache and return 200, or return 0 (and maybe arm storing)."""
        state = self.state
        assert state is not None and state.memory is not None
        call, headers = ex.call, ex.request.headers
        if not cacheable(state.memory.settings, call.payload, headers):
            return 0
        lookup, store = cache_directives(headers)
        payload = call.payload if call.layout is None else None
        key = cache_key(call.api.path, ex.client, payload, ex.request.body)
        if lookup:
            entry, tier = await state.cache_get(key)
            replay = None
            if entry is not None and call.stream:
                replay = stream_of(entry.body, call.wants_usage)
            if entry is not None and (replay is not None or not call.stream):
                self._metrics.cache_hits.inc()
                self._metrics.cache_tier_hits.labels(tier).inc()
                if entry.cost:
                    self._metrics.cache_saved.labels(model).inc(entry.cost)
                ex.cost, ex.used_tokens = 0.0, 0  # a hit costs nothing
                own = [
                    (CACHE_HEADER, b"hit"),
                    (b"x-modelroute-cost-usd", b"0.00000000"),
                    (b"x-modelroute-request-id", ex.request_id),
                    (b"x-request-id", ex.request_id),
                    *ex.notes,
                ]
                if replay is not None:
                    if ex.ingress is not None:
                        replay = ex.ingress.events(replay) + ex.ingress.end()
                    kept = [h for h in entry.headers if h[0] not in (b"content-type",)]
                    ex.out.start_stream(200, [(b"content-type", b"text/event-stream"), *kept, *own])
                    ex.out.write_now(replay)
                    ex.out.end_stream()
                else:
                    body = entry.body if ex.ingress is None else ex.ingress.answer(entry.body)
                    ex.out.send(200, [*entry.headers, *own], body)
                return 200
        self._metrics.cache_misses.inc()
        if store:
            ex.cache_key = key
            if call.stream and call.api is CHAT:
                ex.gather = Gathered()
        return 0

    def _store(self, ex: Exchange, headers: Headers, answer: bytes) -> None:
        """Keep a complete answer: the upstream's headers and who answered, no ids."""
        state = self.state
        if state is None or state.memory is None or ex.cache_key is None:
            return
        if any(name == b"x-modelroute-degraded" for name, _ in ex.notes):
            return  # another model's answer (or a lower tier's): not the one asked for
        kept = [
            h
            for h in headers
            if h[0] not in (b"x-request-id", b"x-modelroute-cost-usd", CACHE_HEADER)
            and not h[0].startswith(b"x-ratelimit-")
        ]
        expires = time() + state.memory.settings.ttl
        state.cache_put(ex.cache_key, Entry(expires, kept, answer, ex.cost))

    def _store_stream(
        self, ex: Exchange, gather: Gathered, usage: Usage, headers: Headers
    ) -> None:
        """Keep a relayed stream as the completion it amounts to, with its usage (which
        the client may not have been sent)."""
        if usage.seen:
            gather.usage = usage.as_dict()
        answer = gather.completion()
        if answer is not None:
            kept = [h for h in headers if h[0] != b"content-type"]
            self._store(ex, [(b"content-type", b"application/json"), *kept], answer)

    def _count_client(self, client: str, code: int, ex: Exchange | None) -> None:
        self._metrics.client_requests.labels(client, str(code)).inc()
        if ex is not None and ex.cost:
            self._metrics.client_cost.labels(client).inc(ex.cost)

    # --- the attempt loop -------------------------------------------------------------

    async def _route(self, ex: Exchange) -> int:
        resilience = ex.table.spec.resilience
        retries = resilience.retries
        max_attempts = 1 + retries.attempts
        failure: AttemptFailed | None = None
        failed: dict[Endpoint, str] = {}  # endpoints that failed this request, and how
        tries = [0] * len(ex.route.targets)  # attempts per target of the chain
        attempt_log: list[str] = []  # for our own 503: who was tried, and what each got
        quick: Candidate | None = None  # a failed target's one more attempt, next in line
        quick_wait = 0.0
        reserved: EndpointHealth | None = None  # the trial slot the quick retry waits for
        try:
            while ex.attempts < max_attempts:
                candidates = plan(ex.route, monotonic(), self._rng)
                if ex.excluded:
                    candidates = [c for c in candidates if c.index not in ex.excluded]
                if ex.route.api_limited or ex.ingress is not None:
                    candidates = [c for c in candidates if ex.serves(c.target)]
                    if ex.pin is not None:
                        candidates = [c for c in candidates if c.endpoint.provider == ex.pin]
                if ex.lower:  # a lower tier is a better place than a degraded endpoint
                    now = monotonic()
                    candidates = [
                        c for c in candidates if c.endpoint.health.state(now) != "degraded"
                    ]
                if ex.affine is not None and ex.attempts == 0 and len(candidates) > 1:
                    prefer_affine(candidates, ex.affine, monotonic())
                panic = False
                if not candidates:
                    if ex.lower and not ex.out.started:
                        raise _Degrade  # every target of this tier is out of service
                    fallback = panic_candidate(ex.route) if ex.attempts == 0 else None
                    if fallback is not None and fallback.index in ex.excluded:
                        fallback = None
                    if fallback is None:
                        break
                    candidates, panic = [fallback], True
                progressed = False
                queue = CandidateQueue(candidates)
                for candidate in queue:
                    if ex.attempts >= max_attempts:
                        break
                    health = candidate.endpoint.health
                    if candidate is quick:
                        quick = None
                        await self._backoff(ex, quick_wait)
                        if reserved is health:
                            reserved = None
                            admission = health.take_trial(monotonic())
                        else:
                            admission = health.admit(monotonic())
                    elif panic:
                        admission = health.force_admit(monotonic())
                        self._metrics.panics.inc()
                    else:
                        if ex.last is not None and candidate.endpoint is ex.last.endpoint:
                            await self._backoff(ex)  # the endpoint that just failed, again
                        admission = health.admit(monotonic())
                    if not admission:
                        continue
                    # The budget limits retries, not failover: only an attempt on an endpoint
                    # that already failed this request with a timeout, a reset or a 5xx (it
                    # did, or may have done, the work) spends it. A candidate this request
                    # has not tried is never refused; a refused retry moves on to the next.
                    budgeted = failed.get(candidate.endpoint) in _COSTLY
                    if budgeted and not self.budget.allows(
                        retries.budget_percent, retries.min_retry_concurrency
                    ):
                        health.done(admission)
                        self._metrics.retries_refused.inc()
                        attempt_log.append(f"{_who(candidate)}=not retried (retry budget)")
                        continue
                    progressed = True
                    try:
                        if budgeted:
                            self.budget.retries += 1
                        self._count_attempt(ex, candidate)
                        tries[candidate.index] += 1
                        if ex.call.stream:
                            return await self._stream(ex, candidate, admission)
                        if resilience.hedging.enabled:
                            status, headers, answer, winner = await self._hedged(
                                ex, candidate, admission, queue
                            )
                        else:
                            status, headers, answer = await self._attempt(ex, candidate, admission)
                            winner = candidate
                    except Retryable as exc:
                        failure = exc
                        failed[candidate.endpoint] = exc.reason
                        attempt_log.append(_attempt_entry(candidate, exc, panic))
                        if exc.reason not in retries.retry_on and not exc.router_fault:
                            if isinstance(exc, UpstreamAnswered):  # not retried: pass it on
                                return self._pass_through(ex, exc, ex.last or candidate)
                            return self._give_up(ex, failure, attempt_log)
                        # Same target or next target, on purpose: before the chain leaves
                        # a target after its first failure, a transient one gets one more
                        # quick attempt (its next endpoint is simply next in the plan).
                        nxt = queue.peek()
                        if (
                            tries[candidate.index] == 1
                            and ex.attempts < max_attempts
                            and (nxt is None or nxt.index != candidate.index)
                        ):
                            wait = same_target_wait(
                                exc, health, monotonic(), retries.same_target_wait
                            )
                            if wait is not None and (
                                not isinstance(exc, RateLimited) or health.reserve_trial()
                            ):
                                if isinstance(exc, RateLimited):
                                    reserved = health
                                quick, quick_wait = candidate, wait
                                queue.push(candidate)
                        continue
                    except UpstreamRejected as exc:
                        if context_exceeded(exc.status, exc.body) and self._skip_smaller(
                            ex, candidate
                        ):
                            continue  # a target with a larger window may still answer
                        return self._pass_through(ex, exc, ex.last or candidate)
                    finally:
                        if budgeted:
                            self.budget.retries -= 1
                    self._respond(ex, winner, status, headers, answer)
                    return status
                if not progressed or panic:
                    break
            return self._give_up(ex, failure, attempt_log)
        finally:
            # A caught exception's traceback holds this frame, and this frame holds the
            # exception: let go of it so the pair is freed now, not at a full collection.
            failure = None
            if reserved is not None:
                reserved.release_trial()

    def _skip_smaller(self, ex: Exchange, failed: Candidate) -> bool:
        """After a context_length_exceeded: leave out the failed target and every target
        whose window is no larger; True if a target is left to try."""
        window = failed.target.context_window
        for index, target in enumerate(ex.route.targets):
            other = target.context_window
            no_larger = window is not None and other is not None and other <= window
            if (index == failed.index or no_larger) and index not in ex.excluded:
                ex.excluded.add(index)
                self._metrics.skipped_targets.labels(
                    ex.route.name,
                    f"{target.provider}/{target.model}",
                    "context-length-exceeded",
                ).inc()
        return len(ex.excluded) < len(ex.route.targets)

    def _count_attempt(self, ex: Exchange, candidate: Candidate, hedge: bool = False) -> None:
        if ex.last is not None:
            if not hedge:  # a hedge is counted in modelroute_hedges_total instead
                self._metrics.retries.inc()
            if ex.last.endpoint.region != candidate.endpoint.region:
                self._metrics.count_failover(ex.last.endpoint.region, candidate.endpoint.region)
        ex.last = candidate
        ex.attempts += 1

    async def _backoff(self, ex: Exchange, at_least: float = 0.0) -> None:
        """Before trying an endpoint again: a jittered exponential backoff, or longer
        if it may not be tried sooner (a cooldown that ends in ``at_least`` seconds)."""
        backoff = ex.table.spec.resilience.retries.backoff
        ceiling = min(backoff.max, backoff.base * 2 ** max(0, ex.attempts - 1))
        jittered = ceiling * self._rng.uniform(0.5, 1.0)
        # (a cooldown's end is waited for a little past it: the loop's clock may run early)
        await asyncio.sleep(max(jittered, at_least + 0.005 if at_least > 0 else 0.0))

    # --- one attempt ------------------------------------------------------------------

    def _record_failure(
        self, ex: Exchange, candidate: Candidate, admission: Admission, exc: AttemptFailed
    ) -> None:
        endpoint = candidate.endpoint
        resilience = ex.table.spec.resilience
        now = monotonic()
        endpoint.outcome(exc.reason).inc()
        health_log.debug(
            "attempt failed provider=%s region=%s reason=%s: %s",
            endpoint.provider,
            endpoint.region,
            exc.reason,
            exc,
        )
        if isinstance(exc, RateLimited):
            endpoint.health.rate_limited(now, exc.retry_after, resilience.rate_limit, admission)
        elif isinstance(exc, Retryable):
            outlier = resilience.outlier_detection
            pool_may_lose_one = may_eject(endpoint.pool, now, outlier.max_ejection_percent)
            at_once = exc.router_fault
            if at_once:
                health_log.warning(
                    "upstream refused the router's key provider=%s region=%s status=%d",
                    endpoint.provider,
                    endpoint.region,
                    getattr(exc, "status", 0),
                )
            if endpoint.health.failed(
                now, exc.reason, outlier, pool_may_lose_one, admission, at_once=at_once
            ):
                self._metrics.ejections.labels(endpoint.provider, endpoint.region).inc()
        else:
            endpoint.health.answered()

    async def _send(self, ex: Exchange, candidate: Candidate, now: float) -> UpstreamResponse:
        """Send the request to ``candidate``; its first-token deadline counts from ``now``."""
        body = ex.body_for(candidate.target)
        timeouts = ex.table.spec.resilience.timeouts
        return await self._client.request(
            candidate.endpoint.origin,
            ex.head_for(candidate, body),
            body,
            connect_timeout=timeouts.connect,
            deadline=now + timeouts.first_token,
        )

    async def _attempt(
        self, ex: Exchange, candidate: Candidate, admission: Admission
    ) -> tuple[int, Headers, bytes]:
        """One non-streaming attempt; the endpoint was admitted by the caller."""
        endpoint = candidate.endpoint
        timeouts = ex.table.spec.resilience.timeouts
        started = perf_counter()
        now = self._loop.time()  # deadlines live on the loop's clock
        response: UpstreamResponse | None = None
        try:
            try:
                response = await self._send(ex, candidate, now)
                if not response.complete:  # the rest of the body may take until `total`
                    response.set_deadline(now + timeouts.total)
                answer = await response.read()
            except TimeoutError:
                raise UpstreamTimeout("upstream did not answer in time") from None
            finally:
                ex.upstream_time += perf_counter() - started
            response.close()  # the body is read: the connection may serve the next request
            if response.status >= 400:
                raise classify(response.status, response.headers, answer)
            check_answer(response.status, answer, response.close_delimited)
        except BaseException as exc:
            if response is not None and not response.released:
                response.abort()  # mid-answer: the connection cannot be reused
            if isinstance(exc, AttemptFailed):
                self._record_failure(ex, candidate, admission, exc)
            raise
        finally:
            endpoint.health.done(admission)
        latency = perf_counter() - started
        endpoint.health.succeeded(monotonic(), admission, latency)
        endpoint.outcome("ok").inc()
        endpoint.upstream_duration.observe(latency)
        return response.status, response.headers, answer

    async def _hedged(
        self, ex: Exchange, first: Candidate, admission: Admission, rest: Iterator[Candidate]
    ) -> tuple[int, Headers, bytes, Candidate]:
        """Race a second candidate against a slow first one; the first success wins."""
        resilience = ex.table.spec.resilience
        retries = resilience.retries
        delay = hedge_delay(resilience.hedging, first)
        primary = self._loop.create_task(self._attempt(ex, first, admission))
        racing: dict[asyncio.Task[tuple[int, Headers, bytes]], Candidate] = {primary: first}
        hedged = False
        try:
            if delay is not None:
                done, _ = await asyncio.wait({primary}, timeout=delay)
                # A hedge is extra load on the upstreams, like a retry: it spends the
                # same budget, so slow upstreams cannot double the traffic they get.
                if not done and self.budget.allows(
                    retries.budget_percent, retries.min_retry_concurrency
                ):
                    for second in rest:
                        second_admission = second.endpoint.health.admit(monotonic())
                        if second_admission:
                            self._metrics.hedges.inc()
                            self._count_attempt(ex, second, hedge=True)
                            self.budget.retries += 1
                            hedged = True
                            task = self._loop.create_task(
                                self._attempt(ex, second, second_admission)
                            )
                            racing[task] = second
                            break
            failure: BaseException | None = None
            pending = set(racing)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        status, headers, answer = task.result()
                        return status, headers, answer, racing[task]
                    failure = task.exception()
            assert failure is not None
            raise failure
        finally:
            failure = None  # (see _route: no frame-exception cycle)
            for task in racing:
                task.cancel()
            if hedged:
                self.budget.retries -= 1

    async def _stream(self, ex: Exchange, candidate: Candidate, admission: Admission) -> int:
        """A streaming attempt: fail over freely until the commit point, relay after it.

        ``timeouts.firstToken`` runs until the first content chunk (the commit
        point), so an upstream that answers 200 and then stalls still fails over.
        """
        endpoint = candidate.endpoint
        try:
            response, state, started = await self._open(ex, candidate, admission)
            if response is None:  # answered with one JSON document instead of a stream
                return state.status
            return await self._commit_and_relay(ex, candidate, admission, response, state, started)
        finally:
            endpoint.health.done(admission)

    async def _open(
        self, ex: Exchange, candidate: Candidate, admission: Admission
    ) -> tuple[UpstreamResponse | None, StreamState, float]:
        """Send a stream request and read up to its first content (the commit point)."""
        endpoint = candidate.endpoint
        timeouts = ex.table.spec.resilience.timeouts
        started = perf_counter()
        now = self._loop.time()
        state = StreamState(strip_usage=ex.strip_usage, deadline=now + timeouts.total)
        native = ex.native_api(candidate.target) if ex.ingress is not None else None
        response: UpstreamResponse | None = None
        try:
            try:
                # The first-token deadline holds until the commit point (open_stream).
                response = await self._send(ex, candidate, now)
                content_type = header(response.headers, b"content-type") or b""
                if response.status >= 400 or not content_type.startswith(b"text/event-stream"):
                    # An error, or one JSON document where a stream was asked for.
                    response.set_deadline(state.deadline)
                    answer = await response.read()
                    response.close()
                    if response.status >= 400:
                        raise classify(response.status, response.headers, answer)
                    check_answer(response.status, answer, response.close_delimited)
                    endpoint.health.succeeded(monotonic(), admission, perf_counter() - started)
                    endpoint.outcome("ok").inc()
                    self._respond(ex, candidate, response.status, response.headers, answer)
                    state.status = response.status
                    return None, state, started
                state.close_delimited = response.close_delimited
                if native is not None:
                    await open_native_stream(native, response, state)
                else:
                    await open_stream(response, state)
                if state.ended and not (state.done or state.finished):
                    # Nothing was sent to the client yet: a cut stream fails over.
                    raise UpstreamReset("upstream stream ended before any content")
            except TimeoutError:
                raise UpstreamTimeout("upstream stream did not start in time") from None
            finally:
                ex.upstream_time += perf_counter() - started
        except BaseException as exc:
            if response is not None and not response.released:
                response.abort()  # mid-answer: the connection cannot be reused
            if isinstance(exc, AttemptFailed):
                self._record_failure(ex, candidate, admission, exc)
            raise
        state.status = response.status
        return response, state, started

    async def _commit_and_relay(
        self,
        ex: Exchange,
        candidate: Candidate,
        admission: Admission,
        response: UpstreamResponse,
        state: StreamState,
        started: float,
    ) -> int:
        """Send the held events (the commit point), then relay the rest as it comes."""
        endpoint = candidate.endpoint
        try:
            # Content arrived: a latency sample, but not yet a success. A stream that
            # is cut later counts as a failure, and cut after cut ejects the endpoint.
            endpoint.health.sample(perf_counter() - started)
            headers = to_client(response.headers)
            if ex.cache_key is not None:
                headers.append((CACHE_HEADER, b"miss"))
            headers += self._identity(ex, candidate, headers)
            ex.out.start_stream(response.status, headers)
            ex.answered = True
            native = ex.native_api(candidate.target) if ex.ingress is not None else None
            ingress = ex.translating(candidate.target) if ex.ingress is not None else None
            translate = ingress.events if ingress is not None else None
            gather = ex.gather if native is None else None
            held = b"".join(state.held)
            if native == "responses":
                self.homes.remember(state.native_id, endpoint.provider, endpoint.key)
            if gather is not None:
                gather.feed(held)
            await ex.out.write(held if translate is None else translate(held))
            ex.route.ttft.observe(perf_counter() - ex.request.received_at)
            self._count_fallback(ex, candidate)
            self._remember_session(ex, candidate)
            failure: AttemptFailed | None = None
            try:
                if not state.ended:
                    response.set_deadline(state.deadline)
                    response.set_idle_timeout(ex.table.spec.resilience.timeouts.stream_idle)
                    check = relay_block if native is None else partial(relay_native, native)
                    await self._relay(response, ex.out, state, gather, translate, check)
                failure = stream_end_failure(state)
            except TimeoutError as exc:
                failure = UpstreamTimeout(str(exc) or "timed out")
            except AttemptFailed as exc:
                failure = exc
            if failure is None:
                endpoint.health.succeeded(monotonic(), admission)
                endpoint.outcome("ok").inc()
            else:
                self._record_failure(ex, candidate, admission, failure)
                self._metrics.stream_interrupted.labels(endpoint.provider, endpoint.region).inc()
                if state.upstream_error is None:  # the upstream's own error event was relayed
                    if native is not None:
                        await ex.out.write(native_interruption(native, str(failure), state))
                    elif ingress is not None:
                        await ex.out.write(ingress.interrupted(str(failure)))
                    else:
                        await ex.out.write(interruption_event(str(failure)))
            whole = failure is None
            if whole and ingress is not None:
                await ex.out.write(ingress.end())
            failure = None  # (see _route: no frame-exception cycle)
            ex.out.end_stream()
            endpoint.upstream_duration.observe(perf_counter() - started)
            cost = self._count_usage(candidate.target, state.usage)
            self._note_usage(ex, state.usage, cost)
            if gather is not None and whole:
                self._store_stream(ex, gather, state.usage, headers)
            return response.status
        finally:
            response.close()

    async def _relay(
        self,
        response: UpstreamResponse,
        out: ResponseWriter,
        state: StreamState,
        gather: Gathered | None = None,
        translate: Callable[[bytes], bytes] | None = None,
        check: Callable[[bytes, StreamState], bytes] = relay_block,
    ) -> None:
        """After the commit point: upstream chunks to the client, as they arrive.

        Chunks are relayed from the upstream connection's callback (no task
        wake-up per chunk), cut at the last complete event so an interrupted
        stream never leaves half an event before its error event; reading
        pauses while the client's socket buffer is full.
        """

        def sink(data: bytes) -> None:
            block = state.feed(data)  # complete events only; raises past the event size cap
            if not block:
                return
            block = check(block, state)
            if gather is not None:
                gather.feed(block)
            if translate is not None:
                block = translate(block)
            if block and not out.write_now(block):
                response.abort()  # the client is gone; its task is being cancelled
                return
            if state.broken is not None:
                raise BadUpstreamAnswer(state.broken)
            if out.write_paused:
                response.pause_reading()

        held = state.take_complete()  # events that came with the first content one
        if held:
            held = check(held, state)
            if gather is not None:
                gather.feed(held)
            await out.write(held if translate is None else translate(held))
            if state.broken is not None:
                raise BadUpstreamAnswer(state.broken)
        out.on_resume(response.resume_reading)
        try:
            await response.pipe(sink)
        finally:
            out.on_resume(None)
        if state.pending:
            # The upstream ended inside an event: judged (and relayed) as if it were
            # terminated, so a cut JSON payload is caught and nothing half-written
            # runs into the error event that may follow.
            rest = bytes(state.pending) + b"\n\n"
            state.pending.clear()
            rest = check(rest, state)
            if gather is not None:
                gather.feed(rest)
            await out.write(rest if translate is None else translate(rest))

    # --- answering --------------------------------------------------------------------

    def _respond(
        self, ex: Exchange, candidate: Candidate, status: int, headers: Headers, answer: bytes
    ) -> None:
        cost = None
        ex.answered = True
        if b'"usage"' in answer:
            usage = Usage()
            usage.take(usage_of(answer))
            cost = self._count_usage(candidate.target, usage)
            self._note_usage(ex, usage, cost)
        self._count_fallback(ex, candidate)
        self._remember_session(ex, candidate)
        headers = to_client(headers)
        if cost is not None:
            headers.append((b"x-modelroute-cost-usd", b"%.8f" % cost))
        if ex.cache_key is not None and status == 200 and not ex.native(candidate.target):
            self._store(ex, headers + list(candidate.identity), answer)
            headers.append((CACHE_HEADER, b"miss"))
        headers += self._identity(ex, candidate, headers)
        ingress = ex.translating(candidate.target) if ex.ingress is not None else None
        if ingress is not None:
            self._send_translated(ex, ingress, status, headers, answer)
            return
        if ex.ingress is not None and ex.ingress.name == "responses":
            endpoint = candidate.endpoint
            self.homes.remember(answer_id(answer), endpoint.provider, endpoint.key)
        ex.out.send(status, headers, answer)

    @staticmethod
    def _send_translated(
        ex: Exchange, ingress: Ingress, status: int, headers: Headers, answer: bytes
    ) -> None:
        """A whole chat answer in the client's API: as one document, or as the stream it
        asked for (an upstream may answer a stream request with one JSON document)."""
        if ex.call.stream:
            replay = stream_of(answer, include_usage=True) or b""
            kept = [h for h in headers if h[0] not in (b"content-type", b"content-length")]
            ex.out.start_stream(status, [(b"content-type", b"text/event-stream"), *kept])
            ex.out.write_now(ingress.events(replay) + ingress.end())
            ex.out.end_stream()
        else:
            ex.out.send(status, headers, ingress.answer(answer))

    @staticmethod
    def _note_usage(ex: Exchange, usage: Usage, cost: float | None) -> None:
        if usage.seen:
            ex.used_tokens = usage.prompt_tokens + usage.completion_tokens
            ex.cost = cost

    def _remember_session(self, ex: Exchange, candidate: Candidate) -> None:
        if ex.session is not None:
            self._sessions.remember(
                ex.session, monotonic(), ex.session_tier, candidate.endpoint.key
            )

    def _count_fallback(self, ex: Exchange, candidate: Candidate) -> None:
        if candidate.index > 0:
            ex.route.fallback_counters[candidate.index].inc()

    def _count_usage(self, target: Target, usage: Usage) -> float | None:
        """Count tokens and cost; the cost in USD, or None when unpriced or unreported."""
        if not usage.seen:
            return None
        target.tokens_in.inc(usage.prompt_tokens)
        target.tokens_out.inc(usage.completion_tokens)
        if usage.cached_tokens and target.tokens_cached is not None:
            target.tokens_cached.inc(usage.cached_tokens)
        if not target.priced:
            return None
        cost = usage.cost(target.input_price, target.cached_price, target.output_price)
        target.cost.inc(cost)
        return cost

    def _identity(self, ex: Exchange, candidate: Candidate, upstream: Headers) -> Headers:
        """Who answered, and the ids: the router's own in ``x-modelroute-request-id``
        (and in its logs); ``x-request-id`` is the upstream's when ``upstream`` (its
        headers as the client gets them) carries one — what SDKs expose and what
        provider support asks for — else the router's. When the router sends its own
        ``x-ratelimit-*`` (client rate limits), the upstream's (its limits for the
        router's key) are taken out of ``upstream``, in place."""
        if any(name.startswith(b"x-ratelimit-") for name, _ in ex.notes):
            upstream[:] = [h for h in upstream if not h[0].startswith(b"x-ratelimit-")]
        overhead = max(0.0, perf_counter() - ex.request.received_at - ex.upstream_time) * 1000
        ids = [(b"x-modelroute-request-id", ex.request_id)]
        if header(upstream, b"x-request-id") is None:
            ids.append((b"x-request-id", ex.request_id))
        return [
            *candidate.identity,
            (b"x-modelroute-attempts", b"%d" % (ex.earlier_attempts + ex.attempts)),
            (b"x-modelroute-overhead-ms", b"%.3f" % overhead),
            *ids,
            *ex.notes,
        ]

    def _pass_through(
        self, ex: Exchange, answer: UpstreamRejected | UpstreamAnswered, candidate: Candidate
    ) -> int:
        """Relay an upstream's error answer: as it came when it is OpenAI-shaped,
        else re-worded in OpenAI's shape with the upstream's status and an
        excerpt of its text; never with one of the router's credentials in it."""
        ingress = ex.translating(candidate.target)
        if ex.native(candidate.target):  # already in the client's API
            headers, body = to_client(answer.headers), redact.scrub(answer.body)
        else:
            headers, body = client_error(answer.status, to_client(answer.headers), answer.body)
        if ingress is not None:
            body = ingress.error(answer.status, body)
        ex.out.send(answer.status, headers + self._identity(ex, candidate, headers), body)
        return answer.status

    def _give_up(
        self, ex: Exchange, failure: AttemptFailed | None, attempt_log: Sequence[str] = ()
    ) -> int:
        """No candidate is left to answer. A tiered request with a lower tier left falls to
        it instead. Else, when the last failure was an upstream's answer (a 429, a 5xx, an
        error event before content), the client gets that answer (see :func:`relayed`),
        a 429 with ``Retry-After`` = when the first candidate is due back (at most what
        the upstream asked);
        when nothing answered, our own 503 with ``Retry-After`` (when the first endpoint
        is due back). Both say in ``x-modelroute-attempt-log`` whom we tried and what
        each got."""
        if ex.lower and not ex.out.started:
            raise _Degrade
        trail: Headers = []
        if attempt_log:
            log_value = ", ".join(attempt_log).encode("ascii", "backslashreplace")
            trail.append((b"x-modelroute-attempt-log", log_value))
        now = monotonic()
        soonest = min(
            (e.health.available_at(now) for t in ex.route.targets for e in t.endpoints),
            default=now,
        )
        retry_after = max(1, math.ceil(soonest - now))
        if isinstance(failure, StreamFailedEarly) and ex.last is not None:
            # The upstream's error event, as it sent it, in a 200 stream: what an SDK
            # would have met talking to that upstream directly.
            head: Headers = [(b"content-type", b"text/event-stream")]
            ex.out.start_stream(200, head + self._identity(ex, ex.last, []) + trail)
            event = redact.scrub(failure.event)
            ingress = ex.translating(ex.last.target)
            if ingress is not None:
                event = ingress.events(event)
            ex.out.write_now(event)
            ex.out.end_stream()
            return 200
        answer = relayed(failure)
        if answer is not None and ex.last is not None:
            status, headers, body = answer
            ingress = ex.translating(ex.last.target)
            if ex.native(ex.last.target) and isinstance(failure, UpstreamAnswered):
                body = redact.scrub(failure.body)  # already in the client's API
            if status == 429:
                # Every candidate is rate-limited: the client may come back when the first
                # of them is due back — sooner than the last one asked when another one
                # asked less, never later than an upstream asked (our cooldowns double).
                asked = parse_retry_after(headers)
                due = retry_after if asked is None else min(retry_after, max(1, math.ceil(asked)))
                headers = [h for h in headers if h[0] not in (b"retry-after", b"retry-after-ms")]
                headers.append((b"retry-after", b"%d" % due))
            if ingress is not None:
                body = ingress.error(status, body)
            ex.out.send(status, headers + self._identity(ex, ex.last, headers) + trail, body)
            return status
        detail = (
            failure.public if failure is not None else "every endpoint is ejected or cooling down"
        )
        tried = f" (tried: {', '.join(attempt_log)})" if attempt_log else ""
        body = error_body(
            f"No upstream could answer for model `{ex.route.name}` after {ex.attempts} "
            f"attempt(s): {detail}{tried}.",
            "server_error",
            code="upstream_unavailable",
        )
        if ex.ingress is not None:
            body = ex.ingress.error(503, body)
        own: Headers = [
            JSON,
            (b"retry-after", b"%d" % retry_after),
            (b"x-modelroute-attempts", b"%d" % (ex.earlier_attempts + ex.attempts)),
            (b"x-modelroute-request-id", ex.request_id),
            (b"x-request-id", ex.request_id),
            *ex.notes,
        ]
        ex.out.send(503, own + trail, body)
        return 503


class _Degrade(Exception):
    """The chosen tier cannot answer: fall to the next tier down (see _route_tiers)."""


def _who(candidate: Candidate) -> str:
    """provider/region/model: names from the spec, never an upstream's host or key."""
    endpoint = candidate.endpoint
    return f"{endpoint.provider}/{endpoint.region}/{candidate.target.model}"


def _attempt_entry(candidate: Candidate, failure: AttemptFailed, panic: bool) -> str:
    """One entry of ``x-modelroute-attempt-log``: who, and the failure it got."""
    if isinstance(failure, RateLimited) and failure.retry_after is not None:
        what = f"429 retry-after {failure.retry_after:g}s"
    elif isinstance(failure, UpstreamAnswered):
        what = str(failure.status)
    elif isinstance(failure, BadUpstreamAnswer):
        what = "bad answer"
    else:
        what = failure.reason
    return f"{_who(candidate)}={what}{' (panic)' if panic else ''}"
