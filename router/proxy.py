"""Proxying one OpenAI API call: accept → resolve → plan → attempt → respond → record.

This module strings the steps together and owns the attempt loop: each
candidate of the plan gets one attempt until one answers, the retry policy
says stop, or the plan runs out. What counts as retryable, and what the
client then sees, is the failure model drawn in :mod:`.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from email.utils import parsedate_to_datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any

import orjson

from modelroute.router.accept import Api, Call, accept
from modelroute.router.auth import bearer_token, key_accepted
from modelroute.router.errors import (
    AttemptFailed,
    ClientError,
    ModelNotFound,
    RateLimited,
    Retryable,
    Unauthorized,
    UpstreamAnswered,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamTimeout,
    error_body,
)
from modelroute.router.headers import header, to_client, to_upstream
from modelroute.router.http.client import UpstreamClient, UpstreamResponse
from modelroute.router.http.server import Request, ResponseWriter
from modelroute.router.metrics import OTHER, Metrics
from modelroute.router.plan import Candidate, plan
from modelroute.router.stream import (
    StreamState,
    Usage,
    interruption_event,
    last_boundary,
    open_stream,
    relay_block,
)
from modelroute.router.table import Route, RoutingTable, Target

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("modelroute.access")

JSON = (b"content-type", b"application/json")
_ID_PREFIX = os.urandom(6).hex().encode()
_ids = itertools.count(1)


def new_request_id() -> bytes:
    """Unique per process and across pods, without uuid4's cost on every request."""
    return b"mr-%s-%d" % (_ID_PREFIX, next(_ids))


def parse_retry_after(headers: list[tuple[bytes, bytes]]) -> float | None:
    """Seconds an upstream asked us to wait (``retry-after-ms`` or ``Retry-After`` seconds)."""
    value = header(headers, b"retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = header(headers, b"retry-after")
    if value is not None:
        try:
            return float(value)
        except ValueError:
            try:
                when = parsedate_to_datetime(value.decode("latin-1"))
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - time.time())
    return None


def classify(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> AttemptFailed:
    """The failure an upstream's non-2xx answer stands for."""
    if status == 429:
        return RateLimited(status, headers, body, parse_retry_after(headers))
    if status >= 500:
        return UpstreamServerError(status, headers, body)
    return UpstreamRejected(status, headers, body)


class Proxy:
    """Serves the proxied API paths against the current routing table."""

    def __init__(
        self, table: Callable[[], RoutingTable], client: UpstreamClient, metrics: Metrics
    ) -> None:
        self._table = table
        self._client = client
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()

    async def handle(self, request: Request, out: ResponseWriter, api: Api) -> None:
        table = self._table()
        metrics = self._metrics
        metrics.in_flight.inc()
        request_id = request.headers.get(b"x-request-id") or new_request_id()
        route: Route | None = None
        code = 500
        try:
            if table.client_keys and not key_accepted(
                bearer_token(request.headers.get(b"authorization")), table.client_keys
            ):
                raise Unauthorized("Incorrect or missing API key.")
            call = accept(api, request.body)
            route = table.routes.get(call.model)
            if route is None:
                raise ModelNotFound(
                    f"The model `{call.model}` does not exist or you do not have access to it.",
                    param="model",
                )
            code = await self._route(request, out, table, route, call, request_id)
        except ClientError as exc:
            code = exc.status
            out.send(code, [JSON, (b"x-request-id", request_id)], exc.body())
        finally:
            metrics.in_flight.dec()
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

    async def _route(
        self,
        request: Request,
        out: ResponseWriter,
        table: RoutingTable,
        route: Route,
        call: Call,
        request_id: bytes,
    ) -> int:
        resilience = table.spec.resilience
        retry_on = resilience.retries.on
        max_attempts = 1 + resilience.retries.attempts
        forward = to_upstream(request.headers) + b"x-request-id: " + request_id + b"\r\n"
        strip_usage = False
        if call.stream and not call.wants_usage:
            options = call.payload.get("stream_options")
            call.payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
            strip_usage = True
        bodies: dict[str, bytes] = {}
        upstream_time = 0.0
        attempts = 0
        failure: AttemptFailed | None = None
        for candidate in plan(route):
            if attempts >= max_attempts:
                break
            attempts += 1
            target, endpoint = candidate.target, candidate.endpoint
            body = bodies.get(target.model)
            if body is None:
                call.payload["model"] = target.model
                body = bodies[target.model] = orjson.dumps(call.payload)
            head = (
                endpoint.heads[call.api.path] + forward + b"content-length: %d\r\n\r\n" % len(body)
            )
            started = perf_counter()
            try:
                if call.stream:
                    return await self._stream(
                        out, route, candidate, head, body, strip_usage, request, request_id,
                        attempts, upstream_time, table,
                    )  # fmt: skip
                status, headers, answer = await self._exchange(candidate, head, body, table)
            except Retryable as exc:
                upstream_time += perf_counter() - started
                endpoint.outcome(exc.reason).inc()
                failure = exc
                if exc.reason in retry_on:
                    continue
                if isinstance(exc, UpstreamAnswered):  # not retried by policy: the client gets it
                    self._pass_through(
                        out, exc, candidate, attempts, request_id, request, upstream_time
                    )
                    return exc.status
                break
            except UpstreamRejected as exc:
                endpoint.outcome(exc.reason).inc()
                self._pass_through(
                    out, exc, candidate, attempts, request_id, request, upstream_time
                )
                return exc.status
            upstream_time += perf_counter() - started
            endpoint.outcome("ok").inc()
            endpoint.upstream_duration.observe(perf_counter() - started)
            if b'"usage"' in answer:
                usage = Usage()
                with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                    usage.take(orjson.loads(answer).get("usage"))
                self._count_usage(target, usage)
            headers = to_client(headers)
            headers += self._identity(candidate, attempts, request_id, request, upstream_time)
            out.send(status, headers, answer)
            return status
        return self._give_up(out, route, failure, attempts, request_id)

    async def _exchange(
        self, candidate: Candidate, head: bytes, body: bytes, table: RoutingTable
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        timeouts = table.spec.resilience.timeouts
        started = self._loop.time()  # the loop's clock: deadlines are set on it
        response: UpstreamResponse | None = None
        try:
            async with asyncio.timeout(min(timeouts.first_token, timeouts.total)) as deadline:
                response = await self._client.request(
                    candidate.endpoint.origin, head, body, connect_timeout=timeouts.connect
                )
                deadline.reschedule(started + timeouts.total)
                answer = await response.read()
        except TimeoutError:
            if response is not None:
                response.abort()
            raise UpstreamTimeout("upstream did not answer in time") from None
        except BaseException:
            if response is not None:
                response.abort()
            raise
        response.close()
        if response.status >= 400:
            raise classify(response.status, response.headers, answer)
        return response.status, response.headers, answer

    async def _stream(
        self,
        out: ResponseWriter,
        route: Route,
        candidate: Candidate,
        head: bytes,
        body: bytes,
        strip_usage: bool,
        request: Request,
        request_id: bytes,
        attempts: int,
        upstream_time: float,
        table: RoutingTable,
    ) -> int:
        timeouts = table.spec.resilience.timeouts
        started = perf_counter()
        total_deadline = self._loop.time() + timeouts.total
        state = StreamState(strip_usage=strip_usage)
        response: UpstreamResponse | None = None
        try:
            async with asyncio.timeout(min(timeouts.first_token, timeouts.total)) as deadline:
                response = await self._client.request(
                    candidate.endpoint.origin, head, body, connect_timeout=timeouts.connect
                )
                deadline.reschedule(total_deadline)
                if response.status >= 400:
                    answer = await response.read()
                    response.close()
                    raise classify(response.status, response.headers, answer)
                content_type = header(response.headers, b"content-type") or b""
                if not content_type.startswith(b"text/event-stream"):
                    # The upstream answered a stream request with one JSON document.
                    answer = await response.read()
                    response.close()
                    headers = to_client(response.headers) + self._identity(
                        candidate,
                        attempts,
                        request_id,
                        request,
                        upstream_time + perf_counter() - started,
                    )
                    out.send(response.status, headers, answer)
                    candidate.endpoint.outcome("ok").inc()
                    return response.status
                await open_stream(response, state)
        except TimeoutError:
            if response is not None:
                response.abort()
            raise UpstreamTimeout("upstream stream did not start in time") from None
        except BaseException:
            if response is not None:
                response.abort()
            raise

        # Commit point: the client gets the headers and the first content now.
        endpoint = candidate.endpoint
        headers = to_client(response.headers) + self._identity(
            candidate, attempts, request_id, request, upstream_time + perf_counter() - started
        )
        out.start_stream(response.status, headers)
        await out.write(b"".join(state.held))
        route.ttft.observe(perf_counter() - request.received_at)
        outcome = "ok"
        try:
            if not state.ended:
                async with asyncio.timeout_at(total_deadline):
                    await self._relay(response, out, state)
        except (TimeoutError, AttemptFailed) as exc:
            outcome = (
                "timeout" if isinstance(exc, TimeoutError) else getattr(exc, "reason", "error")
            )
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            self._metrics.stream_interrupted.labels(endpoint.provider, endpoint.region).inc()
            await out.write(interruption_event(reason))
        finally:
            response.close()
        out.end_stream()
        endpoint.outcome(outcome).inc()
        endpoint.upstream_duration.observe(perf_counter() - started)
        self._count_usage(candidate.target, state.usage)
        return response.status

    async def _relay(
        self, response: UpstreamResponse, out: ResponseWriter, state: StreamState
    ) -> None:
        pending = state.pending
        while True:
            chunk = await response.next_chunk()
            if not chunk:
                if pending:
                    await out.write(relay_block(pending, state))
                return
            buf = pending + chunk if pending else chunk
            cut = last_boundary(buf)
            if cut == 0:
                pending = buf
                continue
            pending = buf[cut:]
            await out.write(relay_block(buf[:cut], state))

    def _count_usage(self, target: Target, usage: Usage) -> None:
        if not usage.seen:
            return
        target.tokens_in.inc(usage.prompt_tokens)
        target.tokens_out.inc(usage.completion_tokens)
        if target.priced:
            target.cost.inc(
                usage.prompt_tokens * target.input_price
                + usage.completion_tokens * target.output_price
            )

    def _identity(
        self,
        candidate: Candidate,
        attempts: int,
        request_id: bytes,
        request: Request,
        upstream_time: float,
    ) -> list[tuple[bytes, bytes]]:
        overhead = max(0.0, perf_counter() - request.received_at - upstream_time) * 1000
        return [
            (b"x-modelroute-provider", candidate.endpoint.provider.encode()),
            (b"x-modelroute-region", candidate.endpoint.region.encode()),
            (b"x-modelroute-model", candidate.target.model.encode()),
            (b"x-modelroute-attempts", b"%d" % attempts),
            (b"x-modelroute-overhead-ms", b"%.3f" % overhead),
            (b"x-request-id", request_id),
        ]

    def _pass_through(
        self,
        out: ResponseWriter,
        answer: UpstreamRejected | UpstreamAnswered,
        candidate: Candidate,
        attempts: int,
        request_id: bytes,
        request: Request,
        upstream_time: float,
    ) -> None:
        headers = to_client(answer.headers)
        headers += self._identity(candidate, attempts, request_id, request, upstream_time)
        out.send(answer.status, headers, answer.body)

    def _give_up(
        self,
        out: ResponseWriter,
        route: Route,
        failure: AttemptFailed | None,
        attempts: int,
        request_id: bytes,
    ) -> int:
        detail = str(failure) if failure is not None else "no endpoint is configured"
        headers: list[Any] = [
            JSON,
            (b"retry-after", b"1"),
            (b"x-modelroute-attempts", b"%d" % attempts),
            (b"x-request-id", request_id),
        ]
        body = error_body(
            f"No upstream could answer for model `{route.name}` after {attempts} attempt(s): {detail}.",
            "server_error",
            code="upstream_unavailable",
        )
        out.send(503, headers, body)
        return 503
