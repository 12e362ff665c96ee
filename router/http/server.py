"""The client-facing HTTP/1.1 server, at asyncio's protocol layer.

Every request a client sends passes through here, so this module does as
little as it can per request: httptools parses, one :class:`Request` holds the
result, and responses are written as pre-joined byte strings. aiohttp would
cost about 50 µs more CPU per request (measured); the admin side does not need
it either, so the router has one listener for everything.

What a handler sees is deliberately small (:class:`Request` and
:class:`ResponseWriter`): that is the interface the rest of the router is
written against, so the transport can change without touching routing code.

Lifecycle duties live here too because only the connection knows them:

* a client that goes away cancels the task serving it, which cancels the
  upstream request (nobody pays for tokens nobody reads);
* draining (SIGTERM) answers with ``Connection: close`` and closes idle
  keep-alive connections, so clients move to other pods without errors;
* bodies over the configured limit are refused with 413 before they are read;
* a request head is bounded while it arrives, not only once a line ends (a
  header value of many megabytes with no line end gets 431 at 64 KiB);
* a request whose head or body stops arriving for ``clientBodyTimeout``, or
  trickles in below ``minBodyRate``, gets 408 (slowloris in either part);
* connections beyond ``maxConnections`` are answered 503 and closed at once;
* HTTP/1.0 clients get no chunked encoding, no ``100 Continue`` and no
  keep-alive: their streams are close-delimited, as RFC 9112 requires.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from time import perf_counter
from typing import cast

import httptools

from modelroute.router.errors import error_body

log = logging.getLogger("modelroute.server")

Headers = list[tuple[bytes, bytes]]
Handler = Callable[["Request", "ResponseWriter"], Awaitable[None]]

MAX_HEADER_BYTES = 64 * 1024
LINGER = 2.0  # seconds a refused client's further input is drained before closing
SWEEP_INTERVAL = 1.0  # seconds between sweeps for idle connections and stalled uploads
MAX_PIPELINED = 32  # requests parsed ahead of the one in service, before reading pauses
IDLE_TIMEOUT = 75.0  # longer than common client pool expiry, so clients close first

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d Unknown\r\n" % status


class Request:
    """One parsed request; header names are lower-case bytes."""

    __slots__ = (
        "body",
        "forward",
        "headers",
        "http10",
        "keep_alive",
        "method",
        "path",
        "query",
        "received_at",
    )

    def __init__(
        self,
        method: bytes,
        path: str,
        query: bytes,
        headers: dict[bytes, bytes],
        forward: bytes,
        body: bytes,
        keep_alive: bool,
        received_at: float,
        http10: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.forward = forward  # header lines a proxy may pass on (see HttpServer)
        self.body = body
        self.keep_alive = keep_alive
        self.received_at = received_at
        self.http10 = http10  # no chunked encoding, no keep-alive (RFC 9112 §6.1)


class ResponseWriter:
    """Writes one response: either whole (:meth:`send`) or as a chunked stream."""

    __slots__ = ("_conn", "_head_only", "_raw", "_streaming", "extra", "started", "status")

    def __init__(self, conn: HttpServerProtocol, head_only: bool = False, raw: bool = False) -> None:
        self._conn = conn
        self._head_only = head_only  # a HEAD request: headers as for GET, no body
        self._raw = raw  # an HTTP/1.0 client: a stream is sent as is and ends with the close
        self._streaming = False
        self.extra: list[tuple[bytes, bytes]] = []  # added to whatever answer is sent (CORS)
        self.started = False
        self.status = 0

    @property
    def client_gone(self) -> bool:
        return self._conn.transport is None

    def send(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> None:
        """Write a complete response with a Content-Length."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self.status = status
        head = [status_line(status)]
        for name, value in headers:
            head.append(name + b": " + value + b"\r\n")
        for name, value in self.extra:
            head.append(name + b": " + value + b"\r\n")
        if status != 204:  # RFC 9110 §8.6: a 204 has no Content-Length
            head.append(b"content-length: %d\r\n" % len(body))
        head.append(self._conn.connection_header())
        if self._head_only:
            body = b""
        data = b"".join(head) + body if len(body) < 65536 else None
        transport = self._conn.transport
        if transport is None:
            return
        if data is not None:
            transport.write(data)
        else:
            transport.write(b"".join(head))
            transport.write(body)

    def start_stream(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Send the status and headers of a chunked response."""
        if self.started:
            raise RuntimeError("response already started")
        self.started = True
        self._streaming = True
        self.status = status
        head = [status_line(status)]
        for name, value in headers:
            head.append(name + b": " + value + b"\r\n")
        for name, value in self.extra:
            head.append(name + b": " + value + b"\r\n")
        if not self._raw:
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(self._conn.connection_header())
        transport = self._conn.transport
        if transport is not None:
            transport.write(b"".join(head))

    def write_now(self, data: bytes) -> bool:
        """Send one chunk without waiting; False if the client is gone.

        For callers that cannot await (a protocol callback relaying a stream):
        they watch :attr:`write_paused` and :meth:`on_resume` for back-pressure.
        """
        transport = self._conn.transport
        if transport is None:
            return False
        transport.write(data if self._raw else b"%x\r\n%b\r\n" % (len(data), data))
        return True

    @property
    def write_paused(self) -> bool:
        return self._conn.write_paused

    def on_resume(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` when the client's socket buffer drains again."""
        self._conn.resume_callback = callback

    async def write(self, data: bytes) -> None:
        """Send one chunk; waits while the client's socket buffer is full."""
        transport = self._conn.transport
        if transport is None:
            raise ConnectionResetError("client disconnected")
        if data:
            transport.write(data if self._raw else b"%x\r\n%b\r\n" % (len(data), data))
        if self._conn.write_paused:
            await self._conn.wait_writable()

    def end_stream(self) -> None:
        transport = self._conn.transport
        if transport is not None and not self._raw:
            transport.write(b"0\r\n\r\n")


class _NoCallbacks:
    """What a closed connection's parser calls back: nothing (see connection_lost)."""


_CLOSED_PARSER = httptools.HttpRequestParser(_NoCallbacks())


class HttpServerProtocol(asyncio.Protocol):
    """One client connection: parses requests and runs the handler for each in turn."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = server.loop
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.write_paused = False
        self.resume_callback: Callable[[], None] | None = None
        self._writable: asyncio.Future[None] | None = None
        # request being parsed
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._forward: list[bytes] = []
        self._header_bytes = 0
        self._forwarded = server.forwarded
        self._forwarded_prefixes = server.forwarded_prefixes
        self._in_head = False  # a request head has begun and is not complete
        self._head_read = 0  # bytes read while the head was in progress
        self._receiving = False  # a request has begun and is not complete
        self._started_at = 0.0  # when the request in progress began
        self._received = 0  # bytes of the request in progress
        self._http10 = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._refused = False
        self._refusal: bytes | None = None  # waits for earlier pipelined answers
        self._close_after = False
        # requests parsed but not yet served (pipelining), and the one in service
        self._queue: deque[Request] = deque()
        # One serving task per connection, not per request: keep-alive clients send
        # many requests, and a task each (creation, scheduling, the asyncio task
        # registry) was measurable per request.
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None  # the task waits for a request
        self._busy = False  # a request is in service
        self._reading_paused = False  # too many pipelined requests waiting
        self.idle_since = 0.0

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.idle_since = self._loop.time()
        if len(self._server.connections) >= self._server.max_connections:
            self._refuse(503, b"the router has too many open connections; try again")
            return
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._server.connections.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client is gone: stop paying for its upstream call
        # Neither the task (whose CancelledError's traceback holds frames that hold this
        # object) nor the parser (which holds bound methods of it) may keep a cycle
        # alive until a full garbage collection: let go of both.
        self._task = None
        self._parser = _CLOSED_PARSER
        self._queue.clear()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("client disconnected"))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        was_in_head = self._in_head
        if self._receiving:
            self._received += len(data)
            self.idle_since = self._loop.time()  # "idle" means no progress, not "no answer yet"
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # RFC 9110 lets a server ignore Upgrade (curl --http2 sends h2c on plain
            # HTTP): the request was parsed and is answered as HTTP/1.1. The bytes
            # after it would be the other protocol, so nothing more is read and the
            # connection closes after the answer.
            self._refused = True
            self._close_after = True
        except httptools.HttpParserError as exc:
            if not self._refused:
                self._refuse(400, b"malformed HTTP request: " + str(exc).encode())
            return
        if was_in_head and self._in_head and not self._refused:
            # httptools holds a header value until its line ends: bound it as it grows,
            # counting whole reads in which the head was in progress from start to end.
            self._head_read += len(data)
            if self._head_read > MAX_HEADER_BYTES:
                self._refuse(431, b"request headers too large")

    def eof_received(self) -> bool | None:
        # A client that closes its socket sends FIN, which looks exactly like a
        # half-close. Clients that half-close and still wait for an answer are
        # vanishingly rare; clients that give up are common, and must not keep an
        # upstream call running for nobody. So FIN means gone: returning None lets
        # the transport close, and connection_lost cancels the request in service.
        return None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.resume_callback is not None:
            self.resume_callback()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    async def wait_writable(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()
        await self._writable

    # --- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        now = self._loop.time()
        self.idle_since = now  # "idle" means no progress, not "no answer yet"
        self._in_head = True
        self._head_read = 0
        self._receiving = True
        self._started_at = now
        self._received = 0
        self._url = b""
        self._headers = {}
        self._forward = []
        self._header_bytes = 0
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_HEADER_BYTES:
            self._refuse(414, b"request URL too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(431, b"request headers too large")
            return
        name = name.lower()
        self._headers[name] = value
        if name in self._forwarded or name.startswith(self._forwarded_prefixes):
            # Serialised as they arrive: a proxy forwards them without another pass.
            self._forward.append(name + b": " + value + b"\r\n")

    def on_headers_complete(self) -> None:
        self._in_head = False
        version = self._parser.get_http_version()
        if version not in ("1.1", "1.0"):  # HTTP/2 and later do not start like this
            self._refuse(505, b"HTTP/%s is not supported; use HTTP/1.1" % version.encode())
            return
        self._http10 = version == "1.0"
        length = self._headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self._server.max_body:
            self._refuse_too_large()
            return
        # curl and others wait for this before sending a body over 1 KiB (HTTP/1.1 only:
        # a 1.0 client does not know 1xx answers).
        expect = self._headers.get(b"expect", b"").lower() == b"100-continue"
        if expect and not self._http10 and self.transport:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_chunk_header(self) -> None:
        # Until this chunk's data starts, what arrives is framing; after the last
        # chunk it is trailers, which httptools buffers like headers: bound them too.
        self._in_head = True
        self._head_read = 0

    def on_chunk_complete(self) -> None:
        self._in_head = False

    def on_body(self, body: bytes) -> None:
        self._in_head = False
        self.idle_since = self._loop.time()  # a slow upload is progress, not idleness
        self._body_size += len(body)
        if self._body_size > self._server.max_body:
            self._refuse_too_large()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._receiving = False
        if self._refused:
            return
        url = self._url
        if url[:1] != b"/" and (url.startswith((b"http://", b"https://"))):
            # Absolute form (RFC 9112 §3.2.2), as a client that thinks we are a proxy sends.
            slash = url.find(b"/", url.find(b"//") + 2)
            url = url[slash:] if slash >= 0 else b"/"
        mark = url.find(b"?")
        path, query = (url, b"") if mark < 0 else (url[:mark], url[mark + 1 :])
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = Request(
            self._parser.get_method(),
            path.decode("latin-1"),
            query,
            self._headers,
            b"".join(self._forward),
            body,
            self._parser.should_keep_alive() and not self._http10,
            perf_counter(),
            self._http10,
        )
        self._queue.append(request)
        if len(self._queue) >= MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()  # resumed as the queue drains
            self._reading_paused = True
        if self._task is None:
            self._task = self._loop.create_task(self._serve_loop())
        elif self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # --- serving ------------------------------------------------------------------

    async def _serve_loop(self) -> None:
        """Serve this connection's requests in order, for as long as it is kept alive."""
        while self.transport is not None:
            if not self._queue:
                self.idle_since = self._loop.time()
                self._wakeup = self._loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
                continue
            request = self._queue.popleft()
            if self._reading_paused and len(self._queue) < MAX_PIPELINED // 2:
                self._reading_paused = False
                self.transport.resume_reading()
            self._busy = True
            try:
                keep_alive = await self._serve(request)
            finally:
                self._busy = False
            if not keep_alive:
                return

    async def _serve(self, request: Request) -> bool:
        """Answer one request; False when the connection is to close after it."""
        writer = ResponseWriter(self, head_only=request.method == b"HEAD", raw=request.http10)
        self._http10 = request.http10  # for connection_header while this one is answered
        self._server.active += 1
        try:
            await self._server.handler(request, writer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error serving %s %s", request.method.decode(), request.path)
            if writer.started:
                self._close()
                return False
            writer.send(500, _JSON, _internal_error())
        finally:
            self._server.active -= 1
            self._server.request_finished()
        if self.transport is None:
            return False
        if self._queue and request.keep_alive and not self._server.draining:
            return True
        if self._refusal is not None:
            # A bad request arrived behind the ones just answered: its refusal is next.
            self._answer_and_close(self._refusal)
            return False
        if not request.keep_alive or self._server.draining or self._close_after:
            self._close()
            return False
        return True

    def connection_header(self) -> bytes:
        if self._server.draining or self._close_after or self._http10:
            return b"connection: close\r\n\r\n"
        return b"\r\n"

    @property
    def idle(self) -> bool:
        return not self._busy and not self._queue and not self._receiving

    def sweep(self, now: float) -> None:
        """Close this connection if it sat idle too long, or time out a stalled upload."""
        server = self._server
        if self._receiving and not self._refused:
            took = now - self._started_at
            stalled = now - self.idle_since > server.body_timeout
            slow = took > server.body_timeout and self._received < server.min_body_rate * took
            if stalled or slow:
                self._refuse(408, b"the request was not received in time")
        elif self.idle and now - self.idle_since > IDLE_TIMEOUT:
            self.close_if_idle()

    def close_if_idle(self) -> None:
        if self.idle and self.transport is not None:
            self.transport.close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _refuse(self, status: int, message: bytes) -> None:
        """Answer a request that cannot be served, then close (parsing stops here)."""
        self._refused = True
        if self.transport is None:
            return
        code = _REFUSAL_CODES.get(status)
        body = error_body(message.decode(), "invalid_request_error", code=code)
        answer = (
            status_line(status)
            + b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
            + body
        )
        if self._busy or self._queue:
            self._refusal = answer  # answers go out in request order
            return
        self._answer_and_close(answer)

    def _answer_and_close(self, answer: bytes) -> None:
        """Send a final answer, then close without losing it (a lingering close).

        Closing a socket that still has unread input makes the kernel send a
        reset, which discards the answer before the client reads it (a 431 for
        a header still arriving, a 413 for a body in flight). So the write side
        is shut after the answer and whatever still comes in is read and thrown
        away (never buffered) until the client closes, at most LINGER seconds.
        """
        transport = self.transport
        if transport is None:
            return
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(LINGER, self._close)
        else:
            transport.close()

    def _refuse_too_large(self) -> None:
        if self._refused:
            return
        limit = self._server.max_body
        self._refuse(
            413,
            b"request body exceeds the limit of %d bytes" % limit,
        )



_JSON: Headers = [(b"content-type", b"application/json")]


_REFUSAL_CODES = {
    408: "request_timeout",
    413: "request_too_large",
    414: "url_too_long",
    431: "headers_too_large",
    503: "too_many_connections",
    505: "http_version_not_supported",
}


def _internal_error() -> bytes:
    return error_body("internal error in modelroute", "server_error")


class HttpServer:
    """A listening socket, its connections, and the drain bookkeeping."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int,
        forwarded: frozenset[bytes] = frozenset(),
        forwarded_prefixes: tuple[bytes, ...] = (),
        max_connections: int = 10_000,
        body_timeout: float = 30.0,
        min_body_rate: float = 1024.0,
    ) -> None:
        self.handler = handler
        self.max_body = max_body
        # Header names (lower-case), and name prefixes, that go into Request.forward.
        self.forwarded = forwarded
        self.forwarded_prefixes = forwarded_prefixes
        self.max_connections = max_connections
        self.body_timeout = body_timeout  # longest pause within a request's head or body
        self.min_body_rate = min_body_rate  # bytes/s a request must average past body_timeout
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpServerProtocol] = set()
        self.active = 0
        self.draining = False
        self._server: asyncio.Server | None = None
        self._idle: asyncio.Event | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def listen(self, host: str, port: int) -> int:
        """Start accepting; returns the bound port (useful with port 0)."""
        self._server = await self.loop.create_server(
            lambda: HttpServerProtocol(self), host, port, reuse_address=True, backlog=4096
        )
        self._sweeper = self.loop.create_task(self._close_idle_connections())
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def _close_idle_connections(self) -> None:
        """Close keep-alive connections idle past IDLE_TIMEOUT, and time out slow uploads.

        One sweep a second for all connections, rather than a timer armed and
        cancelled around every request.
        """
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self.loop.time()
            for conn in list(self.connections):
                conn.sweep(now)

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    def start_draining(self) -> None:
        """Answer with Connection: close from now on and drop idle keep-alives."""
        self.draining = True
        for conn in list(self.connections):
            conn.close_if_idle()

    def request_finished(self) -> None:
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in service; False if ``timeout`` ran out first."""
        if self.active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                while self.active:
                    self._idle.clear()
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def close_all(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn._close()
        self.stop_accepting()
