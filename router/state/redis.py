"""The router's Redis client: one pipelined connection, strict timeouts, a circuit breaker.

Router pods share budgets, rate-limit counters and a response cache through
Redis, and none of that may cost a request more than a few milliseconds: with
Redis slow, stopped or gone, a caller loses at most its call's timeout, and
once the breaker (:mod:`.breaker`) opens, nothing at all.

One :class:`RedisClient` keeps one connection. Each :meth:`~RedisClient.call`
writes its command at once and waits for the reply; Redis answers a
connection's commands in order, so replies are matched to calls first in,
first out, and many callers share the connection without waiting for each
other (pipelining). The connection is an :class:`asyncio.Protocol` that
parses replies as bytes arrive (:mod:`.resp`) and hands each one to its
call's future: no reader task, no stream buffers.

The rule that keeps one caller from reading another's reply (the bug behind
CVE-2023-28858/28859 in redis-py, where a cancelled command left its reply on
the connection for the next caller): **every reply is matched to the call
that was written in its place, or the connection ends**. A cancelled call
keeps its place in line, and its reply is read and dropped when it comes, so
a client going away costs the calls behind it nothing. A timeout, a protocol
error or a connection that closes mid-reply fails every call still waiting
on it with :class:`~.errors.RedisUnavailable` and aborts the transport (a
Redis that does not answer one call in time is not trusted with the next);
later calls get a new connection. An error *reply* (``-ERR``, ``-NOSCRIPT``) is an answer like
any other: it raises :class:`~.errors.RedisError` in its caller only, and the
connection stays.

Each call is bounded by its timeout, connecting included (a connect alone by
``connect_timeout``: it is shared by every call waiting for it, and a short
call's timeout must not abort it for the others). Every (re)connect sends
``AUTH`` and ``SELECT`` before any call's command, so a command never runs as
the wrong user or in the wrong database. Nothing is retried: a command that
was written may have run.

The password is kept out of ``repr``, messages and logs; ``on_latency``,
``on_error`` and ``on_state`` feed metrics, and are called synchronously (they
must not block, and should not raise).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import unquote, urlsplit

from modelroute.router.state.breaker import Breaker, BreakerState
from modelroute.router.state.errors import (
    FailureKind,
    ProtocolError,
    RedisError,
    RedisUnavailable,
)
from modelroute.router.state.resp import Arg, Parser, Reply, encode_command

__all__ = [
    "FailureKind",
    "ProtocolError",
    "RedisAddress",
    "RedisClient",
    "RedisError",
    "RedisUnavailable",
    "Reply",
    "Script",
    "parse_url",
]

DEFAULT_PORT = 6379


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where a client connects and as whom; ``str()`` is the URL without the password."""

    tls: bool
    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{user}{host}:{self.port}/{self.db}"


def parse_url(url: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db]``, or ``rediss://`` for TLS.

    Errors never repeat the URL: it may hold a password.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(
            "a Redis URL is redis://[[user]:password@]host[:port][/db] or rediss://..."
        )
    if parts.query or parts.fragment:
        raise ValueError("a Redis URL takes no query or fragment: use the client's arguments")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("the Redis URL's port is not a number from 0 to 65535") from None
    db_text = parts.path.lstrip("/")
    if not (db_text == "" or (db_text.isdigit() and db_text.isascii())):
        raise ValueError("the Redis URL's path is a database number, as in redis://host:6379/2")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return RedisAddress(
        parts.scheme == "rediss", parts.hostname, port, int(db_text or 0), username, password
    )


def _unavailable(kind: FailureKind, message: str) -> RedisUnavailable:
    return ProtocolError(message) if kind == "protocol" else RedisUnavailable(message, kind=kind)


class _Connection(asyncio.Protocol):
    """One connection: commands written in order, replies handed to their calls in order."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, dead: Callable[[_Connection, bool], None]
    ) -> None:
        self._loop = loop
        self._dead = dead  # told once, when the connection fails: (self, counts against Redis)
        self._parser = Parser()
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future[Reply]] = deque()  # one per command written, in order
        self.ended = False  # failed or closed: no command is written to it again
        self.lost: asyncio.Future[None] = loop.create_future()  # the transport is gone

    def send(self, command: bytes) -> asyncio.Future[Reply]:
        """Write ``command``; the future gets its reply (or RedisUnavailable)."""
        if self.ended or self.transport is None:
            raise RedisUnavailable("the connection to redis closed", kind="closed")
        waiter = self._loop.create_future()
        self.waiters.append(waiter)
        self.transport.write(command)
        return waiter

    def fail(self, kind: FailureKind, message: str, *, counted: bool) -> None:
        """End the connection: every call still waiting fails with ``kind``.

        ``counted``: the failure says Redis is unwell (the breaker counts it).
        """
        if self.ended:
            return
        self.ended = True
        waiters, self.waiters = self.waiters, deque()
        for waiter in waiters:
            if not waiter.done():  # a cancelled call's, or a timed-out call's
                waiter.set_exception(_unavailable(kind, message))
        if self.transport is not None:
            self.transport.abort()
        self._dead(self, counted)

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)
        detail = f": {exc}" if exc is not None else ""
        # Closed with nothing in flight (Redis's idle timeout, a restart while
        # idle): nobody lost anything, and the next call simply reconnects.
        self.fail("closed", f"redis closed the connection{detail}", counted=bool(self.waiters))

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        try:
            replies = self._parser.feed(data)
        except ProtocolError as error:
            self.fail("protocol", error.message, counted=True)
            return
        waiters = self.waiters
        if len(replies) > len(waiters):
            # More answers than questions: the stream is not what it seems, so none of
            # these replies is handed out, not even the first.
            self.fail("protocol", "redis sent a reply to no command", counted=True)
            return
        for reply in replies:
            waiter = waiters.popleft()
            if not waiter.done():  # done: its call was cancelled; the reply is dropped
                waiter.set_result(reply)


class RedisClient:
    """A Redis client for the router's shared state; one per event loop."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | Callable[[], str] | None = None,
        timeout: float = 0.05,
        connect_timeout: float = 0.25,
        failure_threshold: int = 3,
        open_for: float = 1.0,
        ca_file: str | None = None,
        server_name: str | None = None,
        on_latency: Callable[[float], None] | None = None,
        on_error: Callable[[FailureKind], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        """``username``/``password`` override the URL's; ``password`` may be a function,
        asked at every connect (a Secret rotated while the router runs). ``ca_file`` and
        ``server_name`` (the name the certificate must carry, by default the URL's host)
        are for rediss://."""
        address = parse_url(url)
        username = username if username is not None else address.username
        self._read_password = password if callable(password) else None
        if callable(password):
            password = None
        elif password is None:
            password = address.password
        if username and password is None and self._read_password is None:
            raise ValueError("a Redis username needs a password")
        if not address.tls and (ca_file is not None or server_name is not None):
            raise ValueError("ca_file and server_name are for rediss:// URLs")
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        self.address = RedisAddress(
            address.tls, address.host, address.port, address.db, username or None, password
        )
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._ssl = ssl.create_default_context(cafile=ca_file) if address.tls else None
        self._server_name = (server_name or address.host) if address.tls else None
        self._breaker = Breaker(failure_threshold, open_for)
        self._on_latency = on_latency
        self._on_error = on_error
        self._on_state = on_state
        self._conn: _Connection | None = None  # ready for commands (AUTH and SELECT done)
        self._connecting: asyncio.Task[None] | None = None
        self._connect_waiters: list[asyncio.Future[_Connection]] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisClient('{self.address}', available={self.available})"

    @property
    def available(self) -> bool:
        """The breaker is closed: calls go to Redis (False: they fail at once, but one)."""
        return self._breaker.available

    async def call(self, *args: Arg, timeout: float | None = None) -> Reply:
        """Send one command and return its reply.

        Raises :class:`RedisError` for an error reply, :class:`RedisUnavailable`
        for no reply within ``timeout`` seconds (default: the client's), connecting
        included.
        """
        command = encode_command(args)
        if timeout is None:
            limit = self.timeout
        elif timeout > 0:
            limit = timeout
        else:  # it would end the connection for every call on it
            raise ValueError(f"a call's timeout must be positive, not {timeout}")
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        now = loop.time()
        if not self._breaker.allow(now):
            self._report("breaker-open")
            raise RedisUnavailable(
                "redis failed repeatedly; calls fail at once for a while (circuit breaker open)",
                kind="breaker-open",
            )
        try:
            reply = await self._exchange(loop, command, now + limit, limit)
        except RedisUnavailable as error:
            if self._breaker.state is BreakerState.HALF_OPEN:
                self._failed(loop.time())  # the trial call failed
            self._report(error.kind)
            raise
        except BaseException:  # cancelled: neither an answer nor a failure of Redis
            self._breaker.abandoned(loop.time())
            raise
        if self._breaker.succeeded() and self._on_state is not None:
            self._on_state(True)
        if self._on_latency is not None:
            self._on_latency(time.perf_counter() - started)
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, command: bytes, deadline: float, limit: float
    ) -> Reply:
        conn = self._conn
        if conn is None:
            conn = await self._connected(loop, deadline, limit)
        waiter = conn.send(command)
        timer = loop.call_at(deadline, self._expire, conn, waiter, limit)
        try:
            return await waiter
        finally:
            # A cancelled call (its client went away) leaves its future in line: its
            # reply, when it comes, is read and dropped (data_received), so the replies
            # behind it still reach their own calls and the connection stays for them.
            timer.cancel()

    def _expire(self, conn: _Connection, waiter: asyncio.Future[Reply], limit: float) -> None:
        if not waiter.done():
            waiter.set_exception(
                RedisUnavailable(f"no reply from redis within {limit:g}s", kind="timeout")
            )
            conn.fail("closed", "another call on the connection timed out", counted=True)

    async def _connected(
        self, loop: asyncio.AbstractEventLoop, deadline: float, limit: float
    ) -> _Connection:
        """The connection, once the connect under way (or one started now) has made it."""
        if self._closed:
            raise RedisUnavailable("the redis client is closed", kind="closed")
        waiter: asyncio.Future[_Connection] = loop.create_future()
        self._connect_waiters.append(waiter)
        if self._connecting is None:
            self._connecting = loop.create_task(self._connect(loop))
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except TimeoutError:
            raise RedisUnavailable(
                f"no connection to redis within {limit:g}s", kind="timeout"
            ) from None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect once for every call waiting, and tell each of them how it went."""
        conn: _Connection | None = None
        kind: FailureKind = "connect"
        message = ""
        try:
            conn = await self._open(loop)
        except asyncio.CancelledError:  # close()
            kind, message = "closed", "the redis client is closed"
            raise
        except TimeoutError:
            message = f"cannot connect to redis at {self.address} within {self.connect_timeout:g}s"
        except Exception as error:  # refused, unreachable, DNS, TLS, AUTH or SELECT refused
            message = f"cannot connect to redis at {self.address}: {error}"
        finally:
            self._connecting = None
            self._conn = conn
            waiters, self._connect_waiters = self._connect_waiters, []
            for waiter in waiters:
                if waiter.done():
                    continue  # its call timed out waiting
                if conn is not None:
                    waiter.set_result(conn)
                else:
                    waiter.set_exception(RedisUnavailable(message, kind=kind))
        if conn is None:
            self._failed(loop.time())

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(
                lambda: _Connection(loop, self._dead),
                self.address.host,
                self.address.port,
                ssl=self._ssl,
                server_hostname=self._server_name,
            )
            try:
                await self._handshake(conn)
            except BaseException:
                conn.fail("connect", "the connection to redis failed while opening", counted=False)
                await asyncio.shield(conn.lost)  # the socket is closed before anyone moves on
                raise
        return conn

    async def _handshake(self, conn: _Connection) -> None:
        """AUTH and SELECT, pipelined: if AUTH fails, SELECT fails too (NOAUTH)."""
        commands: list[tuple[str, bytes]] = []
        address = self.address
        read = self._read_password
        password = read() if read is not None else address.password
        if password is not None:
            user = (address.username,) if address.username else ()
            commands.append(("AUTH", encode_command(("AUTH", *user, password))))
        if address.db:
            commands.append(("SELECT", encode_command(("SELECT", address.db))))
        waiters = [conn.send(command) for _, command in commands]
        replies = await asyncio.gather(*waiters, return_exceptions=True)
        for (name, _), reply in zip(commands, replies, strict=True):
            if isinstance(reply, RedisError):  # an answer, and a refusal
                raise RedisUnavailable(f"redis refused {name}: {reply.message}", kind="connect")
            if isinstance(reply, BaseException):  # no answer: the connection ended
                raise reply

    def _dead(self, conn: _Connection, counted: bool) -> None:
        if conn is not self._conn:
            return  # one still opening: how that ended is the connect's to count
        self._conn = None
        if counted:
            self._failed(asyncio.get_running_loop().time())

    def _failed(self, now: float) -> None:
        if self._breaker.failed(now) and self._on_state is not None:
            self._on_state(False)

    def _report(self, kind: FailureKind) -> None:
        if self._on_error is not None:
            self._on_error(kind)

    async def close(self) -> None:
        """Close the connection (calls still waiting fail); later calls fail. Idempotent."""
        self._closed = True
        task = self._connecting
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        conn = self._conn
        if conn is not None:
            conn.fail("closed", "the redis client was closed", counted=False)
            await conn.lost


class Script:
    """A Lua script, run by its SHA1 (``EVALSHA``) and sent whole (``EVAL``) only when
    Redis answers ``NOSCRIPT``: it restarted, or its script cache was flushed.

    The fallback is a second call, with a timeout of its own.
    """

    def __init__(self, client: RedisClient, source: str | bytes) -> None:
        self.client = client
        self.source = source.encode() if isinstance(source, str) else source
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest()

    def __repr__(self) -> str:
        return f"Script(sha={self.sha})"

    async def __call__(
        self, keys: Sequence[Arg] = (), args: Sequence[Arg] = (), *, timeout: float | None = None
    ) -> Reply:
        try:
            return await self.client.call(
                "EVALSHA", self.sha, len(keys), *keys, *args, timeout=timeout
            )
        except RedisError as error:
            if error.code != "NOSCRIPT":
                raise
        return await self.client.call("EVAL", self.source, len(keys), *keys, *args, timeout=timeout)
