"""The upstream HTTP/1.1 client: pooled keep-alive connections, at the protocol layer.

One :class:`UpstreamClient` lives as long as the router and keeps idle
connections per origin (scheme, host, port), newest first, so a busy router
opens a handful of connections to each upstream and then only reuses them.
Responses are read with httptools; a body is either collected whole
(:meth:`UpstreamResponse.read`) or handed over chunk by chunk as it arrives
(:meth:`UpstreamResponse.next_chunk`), with reading paused while the consumer
(a slow streaming client) lags behind.

The client knows nothing of LLMs, retries or health: it reports failures as
:class:`~modelroute.router.errors.ConnectFailed`, and its callers decide.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

from modelroute.router.errors import ConnectFailed

Headers = list[tuple[bytes, bytes]]

IDLE_EXPIRY = 30.0  # drop pooled connections idle longer than this; servers close at ~60-75 s
MAX_IDLE_PER_ORIGIN = 512
READ_HIGH_WATER = 256 * 1024  # pause reading an upstream whose consumer lags by this much


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


class _Connection(asyncio.Protocol):
    """One upstream connection; parses a single response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.reused = False
        self.idle_since = 0.0
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sink: Callable[[bytes], None] | None = None  # body bytes go here directly
        self._reset()

    def _reset(self) -> None:
        """Ready for the next response on this connection (the buffer is reused)."""
        self.status = 0
        self.headers: Headers = []
        self.head_received = False
        self.got_bytes = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self._chunks.clear()
        self._buffered = 0
        self._paused = False
        self._length_known = False

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

    def _expire(self) -> None:
        self._timer = None
        if self.error is None and not self.complete:
            self.error = TimeoutError("upstream deadline passed")
            self._wake()
            if self.transport is not None:
                self.transport.abort()

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.set_deadline(None)
        if self.error is not None:
            pass  # already failed (a deadline, a parse error): keep that reason
        elif self.head_received and not self.complete and not self._length_known:
            self.complete = True  # body delimited by the connection closing (HTTP/1.0 style)
        elif not self.complete:
            self.error = exc or ConnectionResetError("upstream closed the connection")
        self._wake()

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = ConnectionError(f"malformed upstream response: {exc}")
            self._wake()
            if self.transport is not None:
                self.transport.abort()

    # --- httptools callbacks ------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.head_received = True
        for name, value in self.headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value):
                self._length_known = True
        if self.status in (204, 304):
            self._length_known = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._sink is not None:
            self._sink(body)
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self.set_deadline(None)
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
        stream costs. Raises what ends the body early.
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
        while not self.complete:
            if self.error is not None:
                raise self.error
            await self._wait()
        data = b"".join(self._chunks)
        self._chunks.clear()
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

    async def read(self) -> bytes:
        try:
            return await self._conn.read_all()
        except TimeoutError:
            raise
        except (OSError, ConnectionError) as exc:
            raise ConnectFailed(
                f"upstream connection failed while reading the body: {exc}"
            ) from exc

    async def next_chunk(self) -> bytes:
        try:
            return await self._conn.next_chunk()
        except TimeoutError:
            raise
        except (OSError, ConnectionError) as exc:
            raise ConnectFailed(f"upstream connection failed mid-body: {exc}") from exc

    async def pipe(self, sink: Callable[[bytes], None]) -> None:
        """Pass the rest of the body to ``sink`` chunk by chunk (see _Connection.pipe)."""
        try:
            await self._conn.pipe(sink)
        except TimeoutError:
            raise
        except (OSError, ConnectionError) as exc:
            raise ConnectFailed(f"upstream connection failed mid-body: {exc}") from exc

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
            self._client._release(self._origin, conn)
        else:
            self.abort()

    def abort(self) -> None:
        self.released = True
        self._conn.set_deadline(None)
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
            raise ConnectFailed(f"connect to {origin.host}:{origin.port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect to {origin.host}:{origin.port}: {exc}") from exc
        return conn

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = self._loop.time()
        while idle:
            conn = idle.pop()
            if conn.transport is not None and now - conn.idle_since < IDLE_EXPIRY:
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    def _release(self, origin: Origin, conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN or conn.transport is None:
            if conn.transport is not None:
                conn.transport.close()
            return
        conn.idle_since = self._loop.time()
        conn.reused = True
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
        """Send a request (``head`` ends with the blank line) and wait for the response head.

        ``deadline`` (loop time) bounds the wait for the head and, until it is
        moved with :meth:`UpstreamResponse.set_deadline`, the body: past it the
        call raises TimeoutError and the connection is closed.

        A pooled connection that the upstream closed while idle is retried once on
        a fresh one: nothing was answered on it, so no work is duplicated that the
        upstream admitted to.
        """
        conn = self._take_idle(origin)
        while True:
            if conn is None:
                conn = await self._connect(origin, connect_timeout)
            conn._reset()
            transport = conn.transport
            if transport is None:
                conn = None
                continue
            if deadline is not None:
                conn.set_deadline(deadline)
            if len(body) < 65536:
                transport.write(head + body)
            else:
                transport.write(head)
                transport.write(body)
            try:
                await conn.read_head()
            except TimeoutError:
                conn.set_deadline(None)
                raise
            except (OSError, ConnectionError) as exc:
                if conn.reused and not conn.got_bytes:
                    conn = None
                    continue
                raise ConnectFailed(f"upstream connection failed: {exc}") from exc
            except BaseException:
                conn.set_deadline(None)
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
