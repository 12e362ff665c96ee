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

It must also bill like a provider, since the cost benchmarks measure what it
bills: ``usage`` counts the prompt about as a BPE tokenizer would (an
estimate: no tokenizer to download), ``max_tokens`` cuts the answer short, a
simulated context window refuses too long a request with OpenAI's 400
``context_length_exceeded``, and a provider-like prefix cache reports its hits
in ``usage.prompt_tokens_details.cached_tokens``.

It also serves the two other APIs clients speak, natively, as a target that
speaks them would: Anthropic's Messages API (``POST /v1/messages``,
``/v1/messages/count_tokens``; :mod:`.sim_messages`) and OpenAI's Responses
API with its stored responses (``POST /v1/responses``, ``GET``/``DELETE
/v1/responses/{id}``; :mod:`.sim_responses`). Their answers are chat answers
translated by the router's own adapters, under the same behaviour. A chat
request that forces a tool call or asks for reasoning gets a model's answer
to it (:mod:`.sim_native`): a tool call with arguments fitting the tool's
schema, reasoning before the text.

The simulator is the upstream in benchmarks, so the request path stays
lean: the low-level aiohttp server with a dict for routing, orjson, SSE
chunks assembled from pre-encoded bytes, no access log, no per-request
logging. Steer it from Python (``SimServer.behaviour``) or over HTTP on the
admin endpoints, which sit outside ``/v1`` and ignore the behaviour:
``GET /sim/stats``, ``POST /sim/behaviour`` (partial update, JSON),
``POST /sim/reset`` (zero the counters, forget the prefix cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import math
import random
import re
import signal
import string
import time
import types
import typing
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

from modelroute.router import sim_messages, sim_native, sim_responses
from modelroute.router.adapters.anthropic import error_body as anthropic_error_body

__all__ = ["SimBehaviour", "SimServer", "SimStats", "run_sim", "start_sim"]


@dataclass
class SimBehaviour:
    """How the simulated upstream answers; read afresh by every request."""

    latency_ms: float = 0
    """Delay before the first byte of any /v1 answer (streaming: before the headers)."""
    tokens: int = 16
    """Completion tokens of a full answer; one SSE chunk each when streaming.

    A request's ``max_tokens`` (or ``max_completion_tokens``) or the room left in
    ``context_window`` cuts it shorter, with ``finish_reason: "length"``."""
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
    context_window: int | None = None
    """Tokens of prompt plus completion the model takes; beyond it, 400 context_length_exceeded."""
    prefix_cache_ttl: float | None = None
    """Seconds a prompt prefix stays cached after its last use; None or 0: no prefix cache."""
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


_NON_NEGATIVE = (
    "latency_ms",
    "tokens",
    "token_delay_ms",
    "retry_after",
    "die_after_tokens",
    "prefix_cache_ttl",
)


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
    if name == "context_window" and value is not None and typing.cast(int, value) < 1:
        raise ValueError(f"context_window: must be at least 1, got {value!r}")
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
    prompt_tokens: int = 0
    """Prompt tokens of the completions it went on to generate (as billed in ``usage``)."""
    cached_tokens: int = 0
    """Of ``prompt_tokens``: those served from the prefix cache."""
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
_CHAT_END = {
    reason: b'"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"%s"}]}\n\n'
    % reason.encode()
    for reason in ("stop", "length")
}
_TEXT_PIECE = b'"choices":[{"text":'
_TEXT_PIECE_END = b',"index":0,"logprobs":null,"finish_reason":null}]}\n\n'
_TEXT_END = {
    reason: b'"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"%s"}]}\n\n'
    % reason.encode()
    for reason in ("stop", "length")
}
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
def _error_body(status: int, message: str, code: str | None, param: str | None = None) -> bytes:
    error = {"message": message, "type": _error_type(status), "param": param, "code": code}
    return orjson.dumps({"error": error})


def _usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None) -> dict[str, Any]:
    """OpenAI's usage object; ``prompt_tokens_details`` only from a sim with a prefix cache."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return usage


def _embedding(item: object) -> list[float]:
    digest = hashlib.blake2b(orjson.dumps(item), digest_size=8).digest()
    return [(byte - 127.5) / 127.5 for byte in digest]


# --- prompt accounting: tokens, the context window, the prefix cache -------
#
# Prompt tokens are estimated, not counted: a tokenizer would be a download. The
# estimate is fitted to o200k (GPT-4o's BPE) on English prose, code, Markdown and
# JSON, fifteen other languages and chat requests, and lands within 25% of it on
# 99% of 2,000-character samples (within 20% on every whole request tried). An
# ASCII letter or digit is a quarter of a token; an ASCII punctuation mark three
# quarters, since it seldom merges with a word; whitespace is free, it rides on
# the next word. A CJK character is 0.75 token (o200k; older cl100k spends 1 to
# 1.3), any other non-ASCII character (accented Latin, Cyrillic, Greek, ...) a
# third. A chat message adds 4 tokens for its role and delimiters, a request 3
# for priming the reply (OpenAI's published rules), an image 765 (one 1024x1024
# image at high detail). JSON that the request carries as structure counts by
# its compact bytes: tool calls 4.5 bytes a token, tool definitions 6 (OpenAI
# renders them as a terse TypeScript-like namespace, not as JSON).

_CJK = re.compile("[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_WHITESPACE = string.whitespace.encode()
_PUNCTUATION = string.punctuation.encode()
_MESSAGE_TOKENS = 4
_REPLY_TOKENS = 3
_NAME_TOKENS = 1
_TOOL_CALL_TOKENS = 3
_IMAGE_TOKENS = 765
_JSON_BYTES_PER_TOKEN = 4.5
_TOOLS_BYTES_PER_TOKEN = 6

_Piece = tuple[str, float]
"""A run of the prompt, in order: its text (what the prefix cache hashes) and its tokens."""


def _text_tokens(text: str) -> float:
    cjk = other = 0
    if text.isascii():
        ascii_only = text.encode()
    else:
        text, cjk = _CJK.subn("", text)
        ascii_only = text.encode("ascii", "ignore")
        other = len(text) - len(ascii_only)
    visible = ascii_only.translate(None, _WHITESPACE)
    letters = visible.translate(None, _PUNCTUATION)
    punctuation = len(visible) - len(letters)
    return len(letters) / 4 + punctuation * 0.75 + cjk * 0.75 + other / 3


def _json_piece(value: object, bytes_per_token: float = _JSON_BYTES_PER_TOKEN) -> _Piece:
    data = orjson.dumps(value)
    return data.decode(), len(data) / bytes_per_token


def _chat_pieces(body: Mapping[str, Any]) -> list[_Piece]:
    """The chat prompt as the model reads it: tool definitions, then each message."""
    pieces: list[_Piece] = []
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        pieces.append(_json_piece(tools, _TOOLS_BYTES_PER_TOKEN))
    for message in body["messages"]:
        if not isinstance(message, dict):
            continue
        role, name = message.get("role"), message.get("name")
        header = f"\x1e{role}\x1f{name or ''}\x1f{message.get('tool_call_id') or ''}\x1f"
        tokens: float = _MESSAGE_TOKENS
        if isinstance(name, str) and name:
            tokens += _NAME_TOKENS + _text_tokens(name)
        pieces.append((header, tokens))
        content = message.get("content")
        if isinstance(content, str):
            pieces.append((content, _text_tokens(content)))
        elif isinstance(content, list):
            pieces.extend(_part_piece(part) for part in content)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                text, tokens = _json_piece(call.get("function") if isinstance(call, dict) else call)
                pieces.append((text, _TOOL_CALL_TOKENS + tokens))
    return pieces


def _part_piece(part: object) -> _Piece:
    if isinstance(part, dict):
        if isinstance(text := part.get("text"), str):
            return text, _text_tokens(text)
        if part.get("type") == "image_url":
            return _json_piece(part)[0], _IMAGE_TOKENS
    return _json_piece(part)


def _text_pieces(prompt: object) -> list[_Piece]:
    """A legacy completion's or an embedding's input: strings, token ids, or lists of either."""
    if isinstance(prompt, str):
        return [(prompt, _text_tokens(prompt))]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return [(_json_piece(prompt)[0], len(prompt))]
    if isinstance(prompt, list):
        return [piece for item in prompt for piece in _text_pieces(item)]
    return []


def _tokens(pieces: list[_Piece], extra: int = 0) -> int:
    return max(1, round(sum(tokens for _, tokens in pieces) + extra))


def _context_error(window: int, prompt: int, limit: int | None, noun: str) -> str:
    """OpenAI's wording, with and without a completion limit in the request."""
    if limit is None:
        return (
            f"This model's maximum context length is {window} tokens. However, your {noun} "
            f"resulted in {prompt} tokens. Please reduce the length of the {noun}."
        )
    return (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt + limit} tokens ({prompt} in the {noun}, {limit} in the completion). "
        f"Please reduce the length of the {noun} or completion."
    )


class _PrefixCache:
    """The prompt prefixes a sim saw lately, as chained hashes of fixed-size blocks.

    Modelled on vLLM's automatic prefix caching: the prompt's bytes are cut into
    blocks of ``BLOCK`` bytes (about 64 tokens), each hashed together with the hash
    of the block before it, so one hash stands for the whole prefix up to its end
    and a lookup needs no comparison of text. A prompt's cached prefix is its run
    of leading blocks whose hashes are present and unexpired; then every block of
    it is stored, or refreshed, to expire ``ttl`` after this use — a provider's
    cache lives on while it is used. The chain starts from the model's name: a
    cache is per model. At most ``max_blocks`` hashes are kept (16 bytes each),
    the least recently used dropped first.
    """

    BLOCK = 256

    def __init__(self, max_blocks: int = 1 << 17) -> None:
        self.max_blocks = max_blocks
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def clear(self) -> None:
        self._expiry.clear()

    def seen(self, model: str, prompt: bytes, ttl: float, now: float) -> int:
        """Bytes of the longest prefix of prompt seen within ttl (whole blocks); remember it."""
        expiry = self._expiry
        while expiry and next(iter(expiry.values())) <= now:
            expiry.popitem(last=False)
        block = self.BLOCK
        chain = hashlib.blake2b(model.encode(), digest_size=16).digest()
        matched = 0
        hit = True
        for start in range(0, len(prompt) - block + 1, block):
            chain = hashlib.blake2b(chain + prompt[start : start + block], digest_size=16).digest()
            if hit and expiry.get(chain, 0.0) > now:
                matched = start + block
            else:
                hit = False
            expiry[chain] = now + ttl
            expiry.move_to_end(chain)
        while len(expiry) > self.max_blocks:
            expiry.popitem(last=False)
        return matched


# OpenAI's prompt caching: prompts of at least 1,024 tokens, hits in steps of
# 128 tokens (DeepSeek's steps are 64, with no minimum; we follow OpenAI).
_CACHE_MIN_TOKENS = 1024
_CACHE_STEP = 128


def _cached_tokens(cache: _PrefixCache, model: str, pieces: list[_Piece], ttl: float) -> int:
    """Tokens of the prompt's prefix the cache holds, as a provider would bill them."""
    encoded = [text.encode() for text, _ in pieces]
    matched = cache.seen(model, b"".join(encoded), ttl, time.monotonic())
    tokens = 0.0
    start = 0
    for data, (_, piece_tokens) in zip(encoded, pieces, strict=True):
        end = start + len(data)
        if end > matched:
            tokens += piece_tokens * (matched - start) / len(data)
            break
        tokens += piece_tokens
        start = end
    if tokens < _CACHE_MIN_TOKENS:
        return 0
    return int(tokens) // _CACHE_STEP * _CACHE_STEP


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
        self._prefix_cache = _PrefixCache()
        self.responses = sim_responses.StoredResponses()
        """Responses kept for ``previous_response_id`` and ``GET /v1/responses/{id}``."""
        self._v1: dict[str, tuple[tuple[str, ...], _Route]] = {
            "/v1/chat/completions": (("POST",), self._chat),
            "/v1/completions": (("POST",), self._completions),
            "/v1/embeddings": (("POST",), self._embeddings),
            "/v1/models": (("GET",), self._models),
            # Anthropic's Messages API and OpenAI's Responses API, served natively
            "/v1/messages": (("POST",), self._native(sim_messages.create)),
            "/v1/messages/count_tokens": (("POST",), self._native(sim_messages.count_tokens)),
            "/v1/responses": (("POST",), self._native(self.responses.create)),
            "/v1/responses/{id}": (("GET", "DELETE"), self._native(self.responses.item)),
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

    def _native(self, handler: sim_native.Handler) -> _Route:
        """A route of a natively served API (its handler takes this server first)."""
        return functools.partial(handler, self)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/v1/responses/"):
            path = "/v1/responses/{id}"
        route = self._v1.get(path)
        if route is None:
            admin = self._admin.get((request.method, path))
            if admin is not None:
                return await admin(request)
            return _json_error(404, f"no route for {request.method} {path}", "not_found", {})
        methods, handler = route
        if request.method not in methods:
            return _json_error(405, f"use {' or '.join(methods)} for {path}", None, {})

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
        param: str | None = None,
    ) -> web.Response:
        headers = self._headers(behaviour, _JSON_HEADERS)
        if status in (429, 503, 529) and behaviour.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(behaviour.retry_after))
        if request.path.startswith("/v1/messages"):  # Anthropic's shape on its API
            body = anthropic_error_body(status, message)
            return await self._finish(
                request, web.Response(status=status, body=body, headers=headers)
            )
        return await self._finish(request, _json_error(status, message, code, headers, param))

    async def _admit(
        self, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse | dict[str, Any]:
        """Everything /v1 does before answering: the response when it ends here, else the body."""
        if behaviour.refuse:
            return self._abort(request)
        key = behaviour.api_key
        if (
            key is not None
            and request.headers.get("Authorization") != f"Bearer {key}"
            and request.headers.get("x-api-key") != key  # how Anthropic clients send it
        ):
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
        if not isinstance(body.get("messages"), list):
            return await self._error(request, behaviour, 400, "messages must be a list")
        pieces, prompt_tokens = self._chat_prompt(body)
        return await self._complete(request, behaviour, body, pieces, prompt_tokens, chat=True)

    def _chat_prompt(self, body: Mapping[str, Any]) -> tuple[list[_Piece], int]:
        """A chat request's prompt as the prefix cache sees it, and its tokens as billed."""
        pieces = _chat_pieces(body)
        return pieces, _tokens(pieces, _REPLY_TOKENS)

    async def _completions(
        self, request: web.BaseRequest, behaviour: SimBehaviour
    ) -> web.StreamResponse:
        body = await self._admit_completion(request, behaviour)
        if not isinstance(body, dict):
            return body
        pieces = _text_pieces(body.get("prompt", ""))
        return await self._complete(request, behaviour, body, pieces, _tokens(pieces), chat=False)

    async def _complete(
        self,
        request: web.BaseRequest,
        behaviour: SimBehaviour,
        body: dict[str, Any],
        pieces: list[_Piece],
        prompt_tokens: int,
        *,
        chat: bool,
    ) -> web.StreamResponse:
        """What a model does with an admitted prompt: check its window, consult its cache, answer."""
        budget = await self._budget(request, behaviour, body, pieces, prompt_tokens, chat=chat)
        if not isinstance(budget, tuple):
            return budget
        tokens, finish, usage = budget
        if chat and sim_native.shaped(body):
            return await sim_native.answer_chat(self, request, behaviour, body, budget)
        if body.get("stream") is True:
            return await self._stream(request, behaviour, body, usage, tokens, finish, chat=chat)
        if (answer := await self._wait_whole(request, behaviour, tokens)) is not None:
            return answer
        choice: dict[str, Any]
        if chat:
            said = {"role": "assistant", "content": _answer(tokens), "refusal": None}
            choice = {"index": 0, "message": said, "logprobs": None, "finish_reason": finish}
        else:
            choice = {
                "text": _answer(tokens),
                "index": 0,
                "logprobs": None,
                "finish_reason": finish,
            }
        payload = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-sim{next(self._ids)}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }
        return await self._json(request, behaviour, payload)

    async def _budget(
        self,
        request: web.BaseRequest,
        behaviour: SimBehaviour,
        body: dict[str, Any],
        pieces: list[_Piece],
        prompt_tokens: int,
        *,
        chat: bool,
    ) -> web.StreamResponse | tuple[int, str, dict[str, Any]]:
        """Tokens to answer, the finish reason and the usage; or the error answer, sent.

        The request's completion limit and the context window cut the answer,
        the prefix cache says what of the prompt it holds; the prompt is billed.
        """
        limit: int | None = None
        for param in ("max_tokens", "max_completion_tokens"):
            value = body.get(param)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                message = f"Invalid '{param}': expected an integer of at least 1, got {value!r}."
                return await self._error(request, behaviour, 400, message, None, param)
            limit = value if limit is None else min(limit, value)
        tokens = behaviour.tokens if limit is None else min(behaviour.tokens, limit)
        window = behaviour.context_window
        if window is not None:
            if prompt_tokens + (limit or 0) > window:
                noun = "messages" if chat else "prompt"
                message = _context_error(window, prompt_tokens, limit, noun)
                return await self._error(
                    request, behaviour, 400, message, "context_length_exceeded", noun
                )
            tokens = min(tokens, window - prompt_tokens)
        finish = "length" if tokens < behaviour.tokens else "stop"

        cached: int | None = None
        if behaviour.prefix_cache_ttl:
            ttl = behaviour.prefix_cache_ttl
            cached = _cached_tokens(self._prefix_cache, body["model"], pieces, ttl)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.cached_tokens += cached or 0
        return tokens, finish, _usage(prompt_tokens, tokens, cached)

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
        prompt_tokens = sum(_tokens(_text_pieces(item)) for item in inputs)
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
        self, request: web.BaseRequest, behaviour: SimBehaviour, tokens: int
    ) -> web.StreamResponse | None:
        """A non-streaming answer's generation time, or the cut connection instead of it."""
        if tokens and behaviour.token_delay_ms > 0:
            await asyncio.sleep(tokens * behaviour.token_delay_ms / 1000)
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
        usage: dict[str, Any],
        tokens: int,
        finish: str,
        *,
        chat: bool,
    ) -> web.StreamResponse:
        """An SSE answer: [role chunk,] one chunk per token, end chunk, [usage chunk,] [DONE]."""
        head = b"".join(
            (
                b'data: {"id":"',
                f"{'chatcmpl' if chat else 'cmpl'}-sim{next(self._ids)}".encode(),
                b'","object":"',
                _CHAT_CHUNK if chat else _TEXT_CHUNK,
                b'","created":',
                str(int(time.time())).encode(),
                b',"model":',
                orjson.dumps(body["model"]),
                b",",
            )
        )
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True

        def no_usage(chunk: bytes) -> bytes:
            """Like OpenAI: once usage is asked for, every chunk but the last says null."""
            return chunk.replace(b"]}\n\n", b'],"usage":null}\n\n') if wants_usage else chunk

        opening = head + no_usage(_ROLE) if chat else b""
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
        piece_end = no_usage(piece_end)
        pieces = _pieces(tokens)
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
        tail = [head, no_usage((_CHAT_END if chat else _TEXT_END)[finish])]
        if wants_usage:
            tail += [head, b'"choices":[],"usage":', orjson.dumps(usage), b"}\n\n"]
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
        self._prefix_cache.clear()
        self.responses.clear()
        return web.Response(body=orjson.dumps(self.stats), headers=_JSON_HEADERS)


def _json_error(
    status: int,
    message: str,
    code: str | None,
    headers: Mapping[str, str],
    param: str | None = None,
) -> web.Response:
    """An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}."""
    body = _error_body(status, message, code, param)
    return web.Response(status=status, body=body, headers={**_JSON_HEADERS, **headers})


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
