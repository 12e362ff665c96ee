"""A simulated OpenAI-compatible upstream, for demos, tests and benchmarks.

The router's job is to survive upstreams that are slow, rate-limited, broken
mid-stream or gone. Real providers do all of that, but not on demand, not for
free and not in CI. This module is the upstream we can steer: a small aiohttp
server speaking the OpenAI wire format (chat completions with and without
SSE streaming, legacy completions, embeddings, the model list) whose
misbehaviour is set by one mutable :class:`SimBehaviour` — latency, per-token
delay, injected error statuses with ``Retry-After``, a stall, a connection
that dies after N tokens, a mid-stream error event, a refused connection.

What it saw is counted in :class:`SimStats`, above all ``cancelled``: a
client that goes away before the answer is complete. That is how tests prove
the router cancels its upstream request when its own client disconnects. The
server runs with aiohttp's ``handler_cancellation`` on: by default aiohttp
(3.8+) lets a handler run on after its client has gone, so a stalled or
slow answer would never notice the disconnect; with it on, the lost
connection cancels the handler at once, wherever it is waiting.

The simulator is also the upstream in benchmarks, so the request path stays
lean: the low-level aiohttp server with a dict for routing, orjson, SSE
chunks assembled from pre-encoded bytes, no access log, no per-request
logging. Steer it from Python (``SimServer.behaviour``) or over HTTP on the
admin endpoints, which sit outside ``/v1`` and ignore the behaviour:
``GET /sim/stats``, ``POST /sim/behaviour`` (partial update, JSON),
``POST /sim/reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import math
import random
import signal
import time
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

__all__ = ["SimBehaviour", "SimServer", "SimStats", "run_sim", "start_sim"]


@dataclass
class SimBehaviour:
    """How the simulated upstream answers; read afresh by every request."""

    latency_ms: float = 0
    """Delay before the first byte of any /v1 answer (streaming: before the headers)."""
    tokens: int = 16
    """Completion tokens; one SSE chunk each when streaming."""
    token_delay_ms: float = 0
    """Delay between streamed chunks; a non-streaming answer waits tokens * this extra."""
    fail_rate: float = 0.0
    """Share of chat/completions/embeddings requests answered with ``fail_status``."""
    fail_status: int = 500
    retry_after: float | None = None
    """Seconds for a ``Retry-After`` header on injected 429 and 503 answers."""
    stall: bool = False
    """Accept the request, never answer (until the client goes away)."""
    die_after_tokens: int | None = None
    """Close the connection after this many content chunks (non-streaming: with no answer)."""
    stream_error_before_content: bool = False
    """Streaming: 200, the role-only chunk, then a ``data: {"error": ...}`` event and the end."""
    refuse: bool = False
    """Close the connection on every /v1 request without answering."""
    api_key: str | None = None
    """When set, /v1 requires ``Authorization: Bearer <api_key>``."""
    models: list[str] = field(default_factory=lambda: ["sim-model"])
    """Listed by GET /v1/models; completions echo whatever model the request names."""
    region: str = ""
    name: str = "sim"
    """Sent back in ``x-sim-name`` (and ``region`` in ``x-sim-region``) on every /v1 answer."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f.name, getattr(self, f.name))

    def update(self, changes: Mapping[str, object]) -> None:
        """Change some fields at once, or none if any name or value is invalid (ValueError)."""
        for name, value in changes.items():
            _check_field(name, value)
        for name, value in changes.items():
            setattr(self, name, value)


def _accepted_types() -> dict[str, tuple[type, ...]]:
    """Runtime types each SimBehaviour field accepts, read from its annotation."""
    hints = typing.get_type_hints(SimBehaviour)
    accepted: dict[str, tuple[type, ...]] = {}
    for f in dataclasses.fields(SimBehaviour):
        hint = hints[f.name]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        kinds: list[type] = []
        for option in options:
            kinds.append(typing.get_origin(option) or option)
            if option is float:
                kinds.append(int)
        accepted[f.name] = tuple(kinds)
    return accepted


_NON_NEGATIVE = ("latency_ms", "tokens", "token_delay_ms", "retry_after", "die_after_tokens")


def _check_field(name: str, value: object) -> None:
    kinds = _ACCEPTED.get(name)
    if kinds is None:
        raise ValueError(f"unknown behaviour field {name!r}")
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(f"{name}: {value!r} is not {' | '.join(k.__name__ for k in kinds)}")
    if name in _NON_NEGATIVE and isinstance(value, int | float) and value < 0:
        raise ValueError(f"{name}: must not be negative, got {value!r}")
    if name == "fail_rate" and not 0 <= typing.cast(float, value) <= 1:
        raise ValueError(f"fail_rate: must be within [0, 1], got {value!r}")
    if name == "fail_status" and not 400 <= typing.cast(int, value) <= 599:
        raise ValueError(f"fail_status: must be an HTTP error status, got {value!r}")
    if name == "models" and not all(isinstance(m, str) for m in typing.cast(list[Any], value)):
        raise ValueError("models: must be a list of strings")


_ACCEPTED = _accepted_types()


@dataclass
class SimStats:
    """What the simulated upstream saw; only /v1 requests count."""

    requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    """Answers fully written, error answers included."""
    errors: int = 0
    """Of ``completed``: answers with an error status, or a mid-stream error event."""
    cancelled: int = 0
    """Requests whose client went away before the answer was complete."""
    aborted: int = 0
    """Connections the simulator closed on purpose: refuse, die_after_tokens, close()."""
    tokens_sent: int = 0
    """Content chunks written to streaming clients."""
    in_flight: int = 0
    last_headers: dict[str, str] = field(default_factory=dict)
    """The last /v1 request's headers, names lower-cased."""
    last_body: Any = None

    def reset(self) -> None:
        """Zero the counters; ``in_flight`` stays, it counts live requests."""
        fresh = SimStats(in_flight=self.in_flight)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(fresh, f.name))


# --- wire format -----------------------------------------------------------

_JSON_HEADERS = {"Content-Type": "application/json"}
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}

_CHAT_CHUNK = b"chat.completion.chunk"
_TEXT_CHUNK = b"text_completion"
_ROLE = b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
_CHAT_PIECE = b'"choices":[{"index":0,"delta":{"content":'
_CHAT_PIECE_END = b'},"logprobs":null,"finish_reason":null}]}\n\n'
_CHAT_STOP = b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
_TEXT_PIECE = b'"choices":[{"text":'
_TEXT_PIECE_END = b',"index":0,"logprobs":null,"finish_reason":null}]}\n\n'
_TEXT_STOP = b'"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}\n\n'
_DONE = b"data: [DONE]\n\n"
_MID_STREAM_ERROR = (
    b"data: "
    + orjson.dumps(
        {
            "error": {
                "message": "simulated upstream error mid-stream",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
    )
    + b"\n\n"
)


@lru_cache(maxsize=32)
def _pieces(tokens: int) -> tuple[bytes, ...]:
    """The answer's tokens as JSON strings: "tok0", " tok1", ... (joined: "tok0 tok1 ...")."""
    return tuple(orjson.dumps(f"tok{i}" if i == 0 else f" tok{i}") for i in range(tokens))


@lru_cache(maxsize=32)
def _answer(tokens: int) -> str:
    return " ".join(f"tok{i}" for i in range(tokens))


def _error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


@lru_cache(maxsize=64)
def _error_body(status: int, message: str, code: str | None) -> bytes:
    error = {"message": message, "type": _error_type(status), "param": None, "code": code}
    return orjson.dumps({"error": error})


def _chars(value: object) -> int:
    """Prompt size in characters; a token id counts as 4 (strings, token lists, nested)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_chars(item) for item in value)
    if isinstance(value, int):
        return 4
    return 0


def _message_chars(messages: list[Any]) -> int:
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(text := part.get("text"), str):
                    total += len(text)
    return total


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _embedding(item: object) -> list[float]:
    digest = hashlib.blake2b(orjson.dumps(item), digest_size=8).digest()
    return [(byte - 127.5) / 127.5 for byte in digest]


# --- the server ------------------------------------------------------------

_Route = Callable[[web.BaseRequest, SimBehaviour], Awaitable[web.StreamResponse]]


class SimServer:
    """The simulated upstream on one host and port; start() again after close() to revive it."""

    def __init__(
        self, behaviour: SimBehaviour | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.host = host
        self.port = port
        """The bound port once started (the requested one before, 0 meaning ephemeral)."""
        self.behaviour = behaviour if behaviour is not None else SimBehaviour()
        self.stats = SimStats()
        self._runner: web.ServerRunner | None = None
        self._live: set[asyncio.Transport] = set()
        self._closing = False
        self._ids = itertools.count(1)
        self._v1: dict[str, tuple[str, _Route]] = {
            "/v1/chat/completions": ("POST", self._chat),
            "/v1/completions": ("POST", self._completions),
            "/v1/embeddings": ("POST", self._embeddings),
            "/v1/models": ("GET", self._models),
        }
        self._admin: dict[tuple[str, str], Callable[[web.BaseRequest], Awaitable[web.Response]]] = {
            ("GET", "/sim/stats"): self._get_stats,
            ("POST", "/sim/behaviour"): self._set_behaviour,
            ("POST", "/sim/reset"): self._reset,
        }

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening and cut every connection with a request in flight, like a crash."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing = True
        try:
            for site in list(runner.sites):
                await site.stop()
            for transport in list(self._live):
                transport.abort()
            await runner.cleanup()
        finally:
            self._closing = False

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- request plumbing ---

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        route = self._v1.get(path)
        if route is None:
            admin = self._admin.get((request.method, path))
            if admin is not None:
                return await admin(request)
            return _json_error(404, f"no route for {request.method} {path}", "not_found", {})
        method, handler = route
        if request.method != method:
            return _json_error(405, f"use {method} for {path}", None, {})

        stats = self.stats
        stats.requests += 1
        stats.by_path[path] = stats.by_path.get(path, 0) + 1
        stats.last_headers = {name.lower(): value for name, value in request.headers.items()}
        stats.in_flight += 1
        transport = request.transport
        if transport is not None:
            self._live.add(transport)
        try:
            return await handler(request, self.behaviour)
        except asyncio.CancelledError:
            # handler_cancellation: the client went away (or close() cut it).
            self._count_lost()
            raise
        except ConnectionError:
            # Writing to a connection the client has just closed.
            self._count_lost()
            return web.Response()  # aiohttp drops it quietly: the transport is closing
        finally:
            stats.in_flight -= 1
            if transport is not None:
                self._live.discard(transport)

    def _count_lost(self) -> None:
        if self._closing:
            self.stats.aborted += 1
        else:
            self.stats.cancelled += 1

    def _abort(self, request: web.BaseRequest) -> web.StreamResponse:
        """Cut the connection: the client gets no (further) bytes and no clean end."""
        self.stats.aborted += 1
        if request.transport is not None:
            request.transport.abort()
        return web.Response()  # never sent; aiohttp sees the closing transport and moves on

    async def _finish(self, request: web.BaseRequest, response: web.Response) -> web.Response:
        await response.prepare(request)
        await response.write_eof()
        self.stats.completed += 1
        if response.status >= 400:
            self.stats.errors += 1
        return response

    def _headers(self, behaviour: SimBehaviour, base: Mapping[str, str]) -> dict[str, str]:
        headers = {**base, "x-sim-name": behaviour.name}
        if behaviour.region:
            headers["x-sim-region"] = behaviour.region
        return headers

    async def _error(
        self,
        request: web.BaseRequest,
        behaviour: SimBehaviour,
        status: int,
        message: str,
        code: str | None = None,
    ) -> web.Response:
        headers = self._headers(behaviour, _JSON_HEADERS)
        if status in (429, 503) and behaviour.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(behaviour.retry_after))
        return await self._finish(request, _json_error(status, message, code, headers))

    async def _admit(
        self, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse | dict[str, Any]:
        """Everything /v1 does before answering: the response when it ends here, else the body."""
        if behaviour.refuse:
            return self._abort(request)
        key = behaviour.api_key
        if key is not None and request.headers.get("Authorization") != f"Bearer {key}":
            return await self._error(
                request, behaviour, 401, "Incorrect API key provided.", "invalid_api_key"
            )
        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                parsed = orjson.loads(await request.read())
            except orjson.JSONDecodeError as exc:
                return await self._error(request, behaviour, 400, f"malformed JSON body: {exc}")
            if not isinstance(parsed, dict):
                return await self._error(request, behaviour, 400, "the body must be a JSON object")
            body = parsed
            self.stats.last_body = body
        if behaviour.stall:
            await asyncio.Future()  # until handler_cancellation cancels us
        if behaviour.latency_ms > 0:
            await asyncio.sleep(behaviour.latency_ms / 1000)
        return body

    async def _admit_completion(
        self, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse | dict[str, Any]:
        """_admit, plus the injected failures every completion-like route shares."""
        body = await self._admit(request, behaviour)
        if not isinstance(body, dict):
            return body
        if behaviour.fail_rate > 0 and random.random() < behaviour.fail_rate:
            status = behaviour.fail_status
            return await self._error(request, behaviour, status, f"simulated failure ({status})")
        if not isinstance(body.get("model"), str):
            return await self._error(request, behaviour, 400, "you must provide a model parameter")
        return body

    # --- /v1 routes ---

    async def _chat(self, request: web.BaseRequest, behaviour: SimBehaviour) -> web.StreamResponse:
        body = await self._admit_completion(request, behaviour)
        if not isinstance(body, dict):
            return body
        messages = body.get("messages")
        if not isinstance(messages, list):
            return await self._error(request, behaviour, 400, "messages must be a list")
        prompt_tokens = max(1, _message_chars(messages) // 4)
        if body.get("stream") is True:
            return await self._stream(
                request, behaviour, body, "chatcmpl", _CHAT_CHUNK, prompt_tokens, chat=True
            )
        if (answer := await self._wait_whole(request, behaviour)) is not None:
            return answer
        tokens = behaviour.tokens
        payload = {
            "id": f"chatcmpl-sim{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _answer(tokens), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(prompt_tokens, tokens),
        }
        return await self._json(request, behaviour, payload)

    async def _completions(
        self, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse:
        body = await self._admit_completion(request, behaviour)
        if not isinstance(body, dict):
            return body
        prompt_tokens = max(1, _chars(body.get("prompt", "")) // 4)
        if body.get("stream") is True:
            return await self._stream(
                request, behaviour, body, "cmpl", _TEXT_CHUNK, prompt_tokens, chat=False
            )
        if (answer := await self._wait_whole(request, behaviour)) is not None:
            return answer
        tokens = behaviour.tokens
        payload = {
            "id": f"cmpl-sim{next(self._ids)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"text": _answer(tokens), "index": 0, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": _usage(prompt_tokens, tokens),
        }
        return await self._json(request, behaviour, payload)

    async def _embeddings(
        self, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse:
        body = await self._admit_completion(request, behaviour)
        if not isinstance(body, dict):
            return body
        given = body.get("input")
        if isinstance(given, str) or (
            isinstance(given, list) and given and all(isinstance(t, int) for t in given)
        ):
            inputs: list[Any] = [given]
        elif isinstance(given, list) and given:
            inputs = given
        else:
            return await self._error(request, behaviour, 400, "input must be a string or a list")
        if behaviour.die_after_tokens is not None:
            return self._abort(request)
        prompt_tokens = max(1, _chars(inputs) // 4)
        payload = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _embedding(item)}
                for i, item in enumerate(inputs)
            ],
            "model": body["model"],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
        return await self._json(request, behaviour, payload)

    async def _models(
        self, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse:
        admitted = await self._admit(request, behaviour)
        if not isinstance(admitted, dict):
            return admitted
        payload = {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": 0, "owned_by": behaviour.name}
                for model in behaviour.models
            ],
        }
        return await self._json(request, behaviour, payload)

    # --- answers ---

    async def _wait_whole(
        self, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse | None:
        """A non-streaming answer's generation time, or the cut connection instead of it."""
        if behaviour.tokens and behaviour.token_delay_ms > 0:
            await asyncio.sleep(behaviour.tokens * behaviour.token_delay_ms / 1000)
        if behaviour.die_after_tokens is not None:
            return self._abort(request)
        return None

    async def _json(
        self, request: web.BaseRequest, behaviour: SimBehaviour, payload: object
    ) -> web.Response:
        response = web.Response(
            body=orjson.dumps(payload), headers=self._headers(behaviour, _JSON_HEADERS)
        )
        return await self._finish(request, response)

    async def _stream(
        self,
        request: web.BaseRequest,
        behaviour: SimBehaviour,
        body: dict[str, Any],
        id_prefix: str,
        kind: bytes,
        prompt_tokens: int,
        *,
        chat: bool,
    ) -> web.StreamResponse:
        """An SSE answer: [role chunk,] one chunk per token, stop chunk, [usage chunk,] [DONE]."""
        head = b"".join(
            (
                b'data: {"id":"',
                f"{id_prefix}-sim{next(self._ids)}".encode(),
                b'","object":"',
                kind,
                b'","created":',
                str(int(time.time())).encode(),
                b',"model":',
                orjson.dumps(body["model"]),
                b",",
            )
        )
        opening = head + _ROLE if chat else b""
        response = web.StreamResponse(headers=self._headers(behaviour, _SSE_HEADERS))
        await response.prepare(request)
        stats = self.stats

        if behaviour.stream_error_before_content:
            await response.write(opening + _MID_STREAM_ERROR)
            await response.write_eof()
            stats.completed += 1
            stats.errors += 1
            return response

        piece, piece_end = (
            (_CHAT_PIECE, _CHAT_PIECE_END) if chat else (_TEXT_PIECE, _TEXT_PIECE_END)
        )
        pieces = _pieces(behaviour.tokens)
        if behaviour.die_after_tokens is not None:
            pieces = pieces[: behaviour.die_after_tokens]
        delay = behaviour.token_delay_ms / 1000
        if delay <= 0:
            # No pacing asked for: the whole stream in one write, the cheapest for benchmarks.
            await response.write(opening + b"".join(head + piece + p + piece_end for p in pieces))
            stats.tokens_sent += len(pieces)
        else:
            if opening:
                await response.write(opening)
            for i, p in enumerate(pieces):
                if i or opening:
                    await asyncio.sleep(delay)
                await response.write(head + piece + p + piece_end)
                stats.tokens_sent += 1

        if behaviour.die_after_tokens is not None:
            return self._abort(request)
        tail = [head, _CHAT_STOP if chat else _TEXT_STOP]
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            usage = orjson.dumps(_usage(prompt_tokens, behaviour.tokens))
            tail += [head, b'"choices":[],"usage":', usage, b"}\n\n"]
        tail.append(_DONE)
        await response.write(b"".join(tail))
        await response.write_eof()
        stats.completed += 1
        return response

    # --- admin routes ---

    async def _get_stats(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats), headers=_JSON_HEADERS)

    async def _set_behaviour(self, request: web.BaseRequest) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of SimBehaviour fields")
            self.behaviour.update(changes)
        except ValueError as exc:  # orjson.JSONDecodeError is one
            return _json_error(400, str(exc), None, _JSON_HEADERS)
        return web.Response(body=orjson.dumps(self.behaviour), headers=_JSON_HEADERS)

    async def _reset(self, request: web.BaseRequest) -> web.Response:
        self.stats.reset()
        return web.Response(body=orjson.dumps(self.stats), headers=_JSON_HEADERS)


def _json_error(
    status: int, message: str, code: str | None, headers: Mapping[str, str]
) -> web.Response:
    """An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}."""
    return web.Response(
        status=status, body=_error_body(status, message, code), headers={**_JSON_HEADERS, **headers}
    )


async def start_sim(
    host: str = "127.0.0.1", port: int = 0, behaviour: SimBehaviour | None = None
) -> SimServer:
    """Start a simulated upstream (port 0: an ephemeral one, reported in ``.port``)."""
    sim = SimServer(behaviour, host=host, port=port)
    await sim.start()
    return sim


def run_sim(host: str, port: int, behaviour: SimBehaviour) -> None:
    """Serve until SIGINT or SIGTERM, then close cleanly; for ``modelroute sim``."""

    async def serve() -> None:
        sim = await start_sim(host, port, behaviour)
        print(f"modelroute sim {behaviour.name!r} serving {sim.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await sim.close()

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve())
