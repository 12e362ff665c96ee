"""The upstream HTTP/1.1 client: pooled keep-alive connections, at the protocol layer.

One :class:`UpstreamClient` lives as long as the router and keeps idle
connections per origin (scheme, host, port), newest first, so a busy router
opens a handful of connections to each upstream and then only reuses them.
Responses are read with httptools; a body is either collected whole
(:meth:`UpstreamResponse.read`) or handed over chunk by chunk as it arrives
(:meth:`UpstreamResponse.next_chunk`), with reading paused while the consumer
(a slow streaming client) lags behind.

HTTP/1.1 rules a proxy must keep (RFC 9110/9112), each tested:

* 1xx answers (``100 Continue``, ``103 Early Hints``) are skipped; only the
  final answer counts, so a connection never goes back to the pool with an
  answer still on it (which would hand one client another client's answer);
* a body ends by its framing: a length, the last chunk, or — only for a
  close-delimited body — a clean close; a reset before that is an error;
* the router asks for ``identity`` but decodes gzip/deflate if an upstream
  sends it anyway, and refuses any other content-coding;
* heads and collected bodies are bounded (:data:`MAX_HEAD_BYTES`,
  :data:`MAX_BODY_BYTES`), so an upstream cannot grow the router's memory;
* a request is re-sent on a fresh connection only when a pooled one was
  found closed *before* it was written (Go's net/http rule): once written, a
  POST may have been worked on, and a failure is reported, never replayed.

The client knows nothing of LLMs, retries or health: it reports failures as
:class:`~modelroute.router.errors.ConnectFailed` (nothing was sent),
:class:`~modelroute.router.errors.UpstreamReset` (sent, then the connection
died) or :class:`~modelroute.router.errors.BadUpstreamAnswer`, and its
callers decide.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

from modelroute.router.errors import (
    AttemptFailed,
    BadUpstreamAnswer,
    ConnectFailed,
    UpstreamReset,
)

Headers = list[tuple[bytes, bytes]]

IDLE_EXPIRY = 30.0  # drop pooled connections idle longer than this; servers close at ~60-75 s
MAX_IDLE_PER_ORIGIN = 512
READ_HIGH_WATER = 256 * 1024  # pause reading an upstream whose consumer lags by this much
MAX_HEAD_BYTES = 256 * 1024  # an upstream's status line and headers
# A collected (non-streaming) answer: 2,048 base64 embeddings of 1,536
# dimensions are about 16 MiB, the same as JSON floats about 60 MiB.
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_CHUNK_EXPANSION = 16 * 1024 * 1024  # decoded bytes from one received chunk of a stream


@dataclass(frozen=True, slots=True)
class Origin:
    """Where connections go: one pool per origin."""

    scheme: str
    host: str
    port: int
    host_header: bytes = field(compare=False)

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


def split_base_url(base_url: str) -> tuple[Origin, str]:
    """An endpoint's origin and its path prefix (``https://h/v1`` → origin, ``/v1``)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port or default_port
    host = parts.hostname
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    origin = Origin(parts.scheme, host, port, host_header.encode("idna"))
    return origin, parts.path.rstrip("/")


def base_query(base_url: str) -> str:
    """The query string a base URL carries, with its ``?`` (Azure's ``?api-version=…``):
    it is appended to every request path, after the API path."""
    query = urlsplit(base_url).query
    return f"?{query}" if query else ""


class _Decoder:
    """Undoes a gzip or deflate content-coding, bounded against decompression bombs."""

    def __init__(self) -> None:
        # 32 + MAX_WBITS: zlib finds the gzip or zlib wrapper itself.
        self._z = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def feed(self, data: bytes, limit: int) -> bytes:
        out = self._z.decompress(data, limit)
        if self._z.unconsumed_tail:
            raise BadUpstreamAnswer("upstream answer expands past the size limit when decoded")
        return out

    def finish(self) -> bytes:
        if not self._z.eof:
            raise BadUpstreamAnswer("upstream answer ends inside its compressed body")
        return self._z.flush()


def _decoder_for(headers: Headers) -> _Decoder | None:
    """The decoder for the answer's Content-Encoding; BadUpstreamAnswer for an unknown one."""
    codings: list[bytes] = []
    for name, value in headers:
        if name == b"content-encoding":
            codings += [c.strip().lower() for c in value.split(b",") if c.strip()]
    codings = [c for c in codings if c != b"identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in (b"gzip", b"x-gzip", b"deflate"):
        return _Decoder()
    named = b", ".join(codings).decode("latin-1")
    raise BadUpstreamAnswer(f"upstream answered with content-coding {named}, not decoded here")


class _NoCallbacks:
    """What a closed connection's parser calls back: nothing (see connection_lost)."""


_CLOSED_PARSER = httptools.HttpResponseParser(_NoCallbacks())


class _Connection(asyncio.Protocol):
    """One upstream connection; parses a single response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.idle_expiry = IDLE_EXPIRY
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_after = 0.0  # seconds without bytes that fail a body (0: no idle limit)
        self._last_data = 0.0
        self._sink: Callable[[bytes], None] | None = None  # body bytes go here directly
        self._reset()

    def _reset(self) -> None:
        """Ready for the next response on this connection (the buffer is reused)."""
        self.status = 0
        self.headers: Headers = []
        self.head_received = False
        self.complete = False
        self.keep_alive = False
        self.close_delimited = False
        self.error: BaseException | None = None
        self._chunks.clear()
        self._buffered = 0
        self._body_size = 0
        self._head_size = 0
        self._framing = False
        self._informational = False
        self._collect = False  # read_all: the whole body is wanted, never pause
        self._decoder: _Decoder | None = None
        self._paused = False

    # --- deadline -----------------------------------------------------------------

    def set_deadline(self, when: float | None) -> None:
        """Fail the response in progress with TimeoutError at loop time ``when``.

        One timer on the connection instead of an ``asyncio.timeout`` per await:
        it costs no task bookkeeping, and firing it aborts the connection, which
        is what a timed-out upstream call must do anyway.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = self._loop.call_at(when, self._expire)

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Fail the body with TimeoutError when no byte arrives for ``seconds``.

        The timer is not moved on every chunk: it fires once per period and
        re-arms itself from the time of the last bytes, which costs a stream
        one timer per idle period instead of a cancel and re-arm per chunk.
        """
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._idle_after = seconds or 0.0
        if self._idle_after > 0:
            self._last_data = self._loop.time()
            self._idle_timer = self._loop.call_at(self._last_data + self._idle_after, self._idle)

    def _idle(self) -> None:
        self._idle_timer = None
        if self.error is not None or self.complete:
            return
        due = self._last_data + self._idle_after
        if self._loop.time() >= due:
            self._fail(TimeoutError(f"no bytes from the upstream for {self._idle_after:g}s"))
        else:
            self._idle_timer = self._loop.call_at(due, self._idle)

    def _expire(self) -> None:
        self._timer = None
        if self.error is None and not self.complete:
            self._fail(TimeoutError("upstream deadline passed"))

    def _fail(self, error: BaseException) -> None:
        """End the response in progress with ``error``; the connection is not reusable."""
        if self.error is None:
            self.error = error
        self._wake()
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.set_deadline(None)
        self.set_idle_timeout(None)
        # The parser holds bound methods of this object: a cycle that only a full
        # garbage collection would free. Nothing is parsed after the connection ends.
        self._parser = _CLOSED_PARSER
        if self.error is not None or self.complete:
            pass  # already ended (a deadline, a parse error, a complete answer)
        elif self.head_received and self.close_delimited and exc is None:
            # A body delimited by the connection closing (HTTP/1.0 style) ends with a
            # clean close only; a reset is a truncation (RFC 9112 §6.3).
            try:
                if self._decoder is not None:
                    self._body(self._decoder.finish())
                self.complete = True
            except AttemptFailed as failure:
                self.error = failure
        else:
            where = "mid-answer" if self.head_received else "before answering"
            detail = f": {exc}" if exc is not None else ""
            self.error = UpstreamReset(f"upstream closed the connection {where}{detail}")
        self._wake()

    def data_received(self, data: bytes) -> None:
        if self._idle_after:
            self._last_data = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # what a callback below raised, if one did
            if isinstance(cause, AttemptFailed):
                self._fail(cause)
            else:
                self._fail(BadUpstreamAnswer(f"malformed upstream response: {exc}"))
            return
        if (not self.head_received or self._framing) and self.error is None:
            # httptools keeps a header value (or a trailer, after the last chunk) until
            # its line ends: bound it here.
            self._head_size += len(data)
            if self._head_size > MAX_HEAD_BYTES:
                self._fail(BadUpstreamAnswer("upstream response head is too large"))

    # --- httptools callbacks ------------------------------------------------------

    def on_message_begin(self) -> None:
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:  # the router never asks to switch protocols
                raise BadUpstreamAnswer("upstream switched protocols (101) unasked")
            self._informational = True  # skipped: the final answer follows (RFC 9110 §15.2)
            return
        self.status = status
        length_known = status in (204, 304)
        for name, value in self.headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value):
                length_known = True
            elif name == b"keep-alive":
                self._keep_alive_hint(value)
        self.close_delimited = not length_known
        self._decoder = _decoder_for(self.headers)
        self.head_received = True
        self._wake()

    def _keep_alive_hint(self, value: bytes) -> None:
        """``Keep-Alive: timeout=5`` (uvicorn's default): stop reusing before the server closes."""
        for part in value.split(b","):
            key, _, number = part.strip().partition(b"=")
            if key.lower() == b"timeout" and number.strip().isdigit():
                self.idle_expiry = min(IDLE_EXPIRY, max(0.0, int(number) - 1.0))

    def on_chunk_header(self) -> None:
        self._framing = True  # chunk framing, or trailers after the last chunk
        self._head_size = 0

    def on_chunk_complete(self) -> None:
        self._framing = False

    def on_body(self, body: bytes) -> None:
        self._framing = False
        if self._decoder is not None:
            limit = MAX_BODY_BYTES - self._body_size + 1 if self._collect else MAX_CHUNK_EXPANSION
            body = self._decoder.feed(body, limit)
            if not body:
                return
        self._body(body)

    def _body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._sink is not None:
            self._sink(body)
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._collect:
            if self._body_size > MAX_BODY_BYTES:
                raise BadUpstreamAnswer(
                    f"upstream answer is larger than the limit of {MAX_BODY_BYTES} bytes"
                )
        elif self._buffered > READ_HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            self.headers = []
            return
        if self._decoder is not None:
            rest = self._decoder.finish()
            if rest:
                self._body(rest)
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self.set_deadline(None)
        self.set_idle_timeout(None)
        self._wake()

    # --- reading ------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read_head(self) -> None:
        while not self.head_received:
            if self.error is not None:
                raise self.error
            await self._wait()

    async def next_chunk(self) -> bytes:
        """The body bytes received since the last call; b"" once the body is complete."""
        while not self._chunks:
            if self.complete:
                return b""
            if self.error is not None:
                raise self.error
            await self._wait()
        if len(self._chunks) == 1:
            data = self._chunks.popleft()
        else:
            data = b"".join(self._chunks)
            self._chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def pipe(self, sink: Callable[[bytes], None]) -> None:
        """Hand every body chunk to ``sink`` as it arrives, until the body ends.

        The chunks go from the protocol callback straight to ``sink``: no
        future, no task wake-up per chunk, which is most of what relaying a
        stream costs. Raises what ends the body early, or what ``sink`` raised
        (as the connection's error: it is aborted).
        """
        buffered = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._sink = sink
        self.resume_reading()  # paused while buffering for the reader; the sink decides now
        try:
            if buffered:
                sink(buffered)  # may pause reading again
            while not self.complete:
                if self.error is not None:
                    raise self.error
                await self._wait()
        finally:
            self._sink = None

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    async def read_all(self) -> bytes:
        """The whole body (at most MAX_BODY_BYTES); reading never pauses for it."""
        self._collect = True
        if self._body_size > MAX_BODY_BYTES:
            raise BadUpstreamAnswer(
                f"upstream answer is larger than the limit of {MAX_BODY_BYTES} bytes"
            )
        self.resume_reading()
        while not self.complete:
            if self.error is not None:
                raise self.error
            await self._wait()
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data


class UpstreamResponse:
    """An upstream's status and headers; the body is read through this object.

    Exactly one of :meth:`release` (body fully read: the connection may be
    reused) or :meth:`abort` (anything else) must end its life; ``finally:
    response.close()`` does the right one.
    """

    __slots__ = ("_client", "_conn", "_origin", "headers", "released", "status")

    def __init__(self, client: UpstreamClient, origin: Origin, conn: _Connection) -> None:
        self._client = client
        self._origin = origin
        self._conn = conn
        self.status = conn.status
        self.headers = conn.headers
        self.released = False  # closed: back in the pool or aborted

    @property
    def complete(self) -> bool:
        """The whole body has arrived (a non-streaming answer usually has by now)."""
        return self._conn.complete

    def set_deadline(self, when: float | None) -> None:
        """Reading the body fails with TimeoutError at loop time ``when``."""
        self._conn.set_deadline(when)

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Reading the body fails with TimeoutError after ``seconds`` without a byte."""
        self._conn.set_idle_timeout(seconds)

    @property
    def close_delimited(self) -> bool:
        """The body ends when the upstream closes (no length, not chunked)."""
        return self._conn.close_delimited

    async def read(self) -> bytes:
        """The whole body; raises TimeoutError, UpstreamReset or BadUpstreamAnswer."""
        return await self._conn.read_all()

    async def next_chunk(self) -> bytes:
        return await self._conn.next_chunk()

    async def pipe(self, sink: Callable[[bytes], None]) -> None:
        """Pass the rest of the body to ``sink`` chunk by chunk (see _Connection.pipe)."""
        await self._conn.pipe(sink)

    def pause_reading(self) -> None:
        """Stop reading from the upstream (the client is not keeping up)."""
        self._conn.pause_reading()

    def resume_reading(self) -> None:
        self._conn.resume_reading()

    def close(self) -> None:
        if self.released:
            return
        conn = self._conn
        if conn.complete and conn.keep_alive and conn.transport is not None and not conn._chunks:
            self.released = True
            conn.set_deadline(None)
            conn.set_idle_timeout(None)
            self._client._release(self._origin, conn)
        else:
            self.abort()

    def abort(self) -> None:
        self.released = True
        self._conn.set_deadline(None)
        self._conn.set_idle_timeout(None)
        # A raised error's traceback holds frames that hold the connection: drop it,
        # so connection and error are freed now, not by a full garbage collection.
        self._conn.error = None
        transport = self._conn.transport
        if transport is not None:
            transport.abort()


class UpstreamClient:
    """Keep-alive connection pools per origin; one instance per router process."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        try:
            async with asyncio.timeout(timeout):
                _, conn = await self._loop.create_connection(
                    lambda: _Connection(self._loop),
                    origin.host,
                    origin.port,
                    ssl=self._ssl_context() if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None,
                )
        except TimeoutError:
            # Envoy's vocabulary: a connect timeout is a connect failure.
            raise ConnectFailed(
                f"connect to {origin.host}:{origin.port} timed out",
                public="connecting to the upstream timed out",
            ) from None
        except (OSError, ssl.SSLError) as exc:
            public = "could not connect to the upstream"
            if isinstance(exc, ssl.SSLCertVerificationError):
                public += " (its TLS certificate failed verification: CERTIFICATE_VERIFY_FAILED)"
            raise ConnectFailed(
                f"cannot connect to {origin.host}:{origin.port}: {exc}", public=public
            ) from exc
        return conn

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = self._loop.time()
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if transport is None:
                continue
            if now - conn.idle_since < conn.idle_expiry and not transport.is_closing():
                return conn
            transport.close()
        return None

    def _release(self, origin: Origin, conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN or conn.transport is None:
            if conn.transport is not None:
                conn.transport.close()
            return
        conn.idle_since = self._loop.time()
        idle.append(conn)

    async def request(
        self,
        origin: Origin,
        head: bytes,
        body: bytes,
        *,
        connect_timeout: float,
        deadline: float | None = None,
    ) -> UpstreamResponse:
        """Send a request (``head`` ends with the blank line) and wait for the final head.

        ``deadline`` (loop time) bounds the wait for the head and, until it is
        moved with :meth:`UpstreamResponse.set_deadline`, the body: past it the
        call raises TimeoutError and the connection is closed.

        Raises ConnectFailed when nothing was sent, and UpstreamReset or
        BadUpstreamAnswer after it was: a written request is never re-sent here,
        because the upstream may already be working on it.
        """
        conn = self._take_idle(origin)
        if conn is None:
            conn = await self._connect(origin, connect_timeout)
        conn._reset()
        transport = conn.transport
        if transport is None:  # closed between connect and now: nothing was sent
            raise ConnectFailed(
                f"connection to {origin.host}:{origin.port} closed at once",
                public="the upstream closed the connection at once",
            )
        if deadline is not None:
            conn.set_deadline(deadline)
        if len(body) < 65536:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        try:
            await conn.read_head()
        except BaseException:
            conn.set_deadline(None)
            conn.error = None  # (see UpstreamResponse.abort: no frame cycle)
            if conn.transport is not None:
                conn.transport.abort()
            raise
        return UpstreamResponse(self, origin, conn)

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
