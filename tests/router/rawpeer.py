"""Raw bytes on both sides of a router: a scripted upstream and a raw client.

The router's HTTP/1.1 server and upstream client are hand-written, so the
bytes on the wire are what its tests must control. The simulator (``sim.py``)
and aiohttp always frame their messages correctly; hostile peers do not.

:class:`RawPeer` is an upstream that answers each request with exactly the
bytes a test scripts for it (interim 1xx responses before the final one, any
framing, any coding, pauses in between), then keeps the connection, closes it,
resets it (``SO_LINGER`` 0, so the close is an RST) or stalls. It records every
request it read, and every request head it could not parse, so a test can
count how often work reached it and check what the router forwarded.

The client side (:class:`RawClient`, :func:`exchange`) writes whatever bytes a
test gives it and reads one response with nothing normalised away: interim
responses, the framing, a body cut short, a connection closed or reset
without an answer, and an answer that never comes are all visible. It reads
through its own protocol rather than asyncio streams, because a
``StreamReader`` raises a reset before handing over the bytes that arrived
ahead of it (a 431 sent just before the router closes, for one).

The router runs in-process (:func:`running_router`), one per scenario, so
hypothesis examples do not share health state; :class:`PeakRss` measures what
a scenario costs in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import re
import socket
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import yaml

from modelroute.router.serve import RouterServer

T = TypeVar("T")
Ending = Literal["keep-alive", "close", "reset", "stall"]
Framing = Literal["length", "chunked", "close"]
Part = bytes | float  # bytes are sent as they are; a float pauses that many seconds

WRITE_SLICE = 256 * 1024  # bytes per write: big sends never sit in a transport buffer whole
MIB = 1024 * 1024
MARKER = re.compile(rb"mk\d+x\d+")


def run(scenario: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run one scenario on a fresh event loop, bounded (a hang fails, it does not block CI)."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await scenario

    return asyncio.run(bounded())


# --- the scripted upstream ----------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the peer does with one request: send ``parts``, then end as ``then`` says."""

    parts: tuple[Part, ...] = ()
    then: Ending = "keep-alive"


@dataclass(frozen=True)
class Received:
    """One request as the peer read it off the wire."""

    connection: int  # which connection, in the order the peer accepted them
    head: bytes
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def content(self) -> str:
        """The first message's text (chat), or the prompt (completions); "" if neither."""
        try:
            payload = self.json()
        except orjson.JSONDecodeError:
            return ""
        if not isinstance(payload, dict):
            return ""
        messages = payload.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            return str(messages[0].get("content"))
        return str(payload.get("prompt", ""))

    @property
    def stream(self) -> bool:
        try:
            payload = self.json()
        except orjson.JSONDecodeError:
            return False
        return isinstance(payload, dict) and payload.get("stream") is True


Script = Callable[[Received], Reply]


class Malformed(Exception):
    """A request head or body the peer could not parse."""


async def _read_request(reader: asyncio.StreamReader, connection: int) -> Received | None:
    """The next request on a connection; None when the router closed it between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise Malformed(f"connection ended inside a request head: {exc.partial[:300]!r}") from None
    except asyncio.LimitOverrunError:
        raise Malformed("request head over the peer's 4 MiB limit") from None
    length: int | None = None
    chunked = False
    for line in head[:-4].split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b"\n" in line or b"\0" in line:
            raise Malformed(f"malformed header line {line[:300]!r} in {head[:600]!r}")
        name, value = name.lower(), value.strip()
        if name == b"content-length":
            if not value.isdigit() or length is not None:
                raise Malformed(f"bad or repeated content-length in {head[:600]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.lower() == b"chunked"
            if not chunked:
                raise Malformed(f"transfer-encoding {value!r} in {head[:600]!r}")
    if chunked and length is not None:
        raise Malformed(f"both content-length and chunked in {head[:600]!r}")
    try:
        if chunked:
            body = b""
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await reader.readexactly(size + 2))[:-2]
            await reader.readuntil(b"\r\n")  # no trailers from the router
        else:
            body = await reader.readexactly(length or 0)
    except (asyncio.IncompleteReadError, ValueError) as exc:
        raise Malformed(f"request body cut or misframed after {head[:600]!r}: {exc}") from None
    return Received(connection, head, body)


_BAD_BODY = b'{"error":{"message":"raw peer: malformed request","type":"invalid_request_error"}}'
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%b" % (len(_BAD_BODY), _BAD_BODY)
)


class RawPeer:
    """A loopback upstream that plays a :class:`Reply` per request (see the module doc)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Received] = []
        self.malformed: list[str] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def arrivals(self, content: str) -> list[Received]:
        """The requests whose first message (or prompt) was ``content``."""
        return [r for r in self.received if r.content == content]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0, limit=4 * MIB)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = self.connections
        self.connections += 1
        self._writers.add(writer)
        # drain() returns only once the kernel has every byte, so a reset or a
        # pause lands exactly where the script says.
        writer.transport.set_write_buffer_limits(high=0)
        try:
            while True:
                try:
                    request = await _read_request(reader, connection)
                except Malformed as exc:
                    self.malformed.append(str(exc))
                    writer.write(_BAD_REQUEST)
                    await writer.drain()
                    return
                if request is None:
                    return
                self.received.append(request)
                if not await self._play(self.script(request), reader, writer):
                    return
        except (ConnectionError, OSError):
            pass  # the router went away mid-reply: that is its right
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _play(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Send one reply; True if the connection stays open for the next request."""
        for part in reply.parts:
            if not isinstance(part, bytes):
                await asyncio.sleep(part)
                continue
            view = memoryview(part)
            for start in range(0, len(view), WRITE_SLICE):
                writer.write(view[start : start + WRITE_SLICE])
                await writer.drain()
        if reply.then == "keep-alive":
            return True
        if reply.then == "close":
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        elif reply.then == "reset":
            await asyncio.sleep(0.01)  # let the router read what was sent before the RST
            _reset(writer)
        else:  # stall: hold the connection, say nothing, until the router gives up
            await reader.read()
        return False

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.asynccontextmanager
async def raw_peer(script: Script) -> AsyncIterator[RawPeer]:
    peer = RawPeer(script)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.close()


# --- what upstreams send --------------------------------------------------------------


def interim(status: int) -> bytes:
    """An interim (1xx) response, as upstreams and their proxies send them."""
    extra = b"link: </v1/hints>; rel=preload\r\n" if status == 103 else b""
    return b"HTTP/1.1 %d %s\r\n%s\r\n" % (status, HTTPStatus(status).phrase.encode(), extra)


def response(
    body: bytes,
    framing: Framing,
    *,
    status: int = 200,
    content_type: bytes = b"application/json",
    headers: Sequence[tuple[bytes, bytes]] = (),
    chunks: Sequence[bytes] | None = None,
) -> bytes:
    """A final response framed by a length, chunked (``chunks``, else one chunk) or the close."""
    head = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
    head.append(b"content-type: " + content_type + b"\r\n")
    head += [name + b": " + value + b"\r\n" for name, value in headers]
    if framing == "length":
        head.append(b"content-length: %d\r\n" % len(body))
        return b"".join(head) + b"\r\n" + body
    if framing == "close":
        head.append(b"connection: close\r\n")
        return b"".join(head) + b"\r\n" + body
    head.append(b"transfer-encoding: chunked\r\n")
    pieces = [body] if chunks is None else list(chunks)
    framed = b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces if piece)
    return b"".join(head) + b"\r\n" + framed + b"0\r\n\r\n"


def chat_json(text: str, padding: int = 0) -> bytes:
    """A chat completion answering ``text`` (``padding`` bytes in an extra field)."""
    answer: dict[str, Any] = {
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 0,
        "model": "upstream-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    }
    if padding:
        answer["x_padding"] = "." * padding
    return orjson.dumps(answer)


def sse_events(words: Sequence[str]) -> list[bytes]:
    """A chat stream's events, one content word each, with usage and ``[DONE]``."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        event = {
            "id": "chatcmpl-raw",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "upstream-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(event) + b"\n\n"

    usage = {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "upstream-model",
        "choices": [],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": len(words),
            "total_tokens": 3 + len(words),
        },
    }
    return [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": word}) for word in words),
        chunk({}, "stop"),
        b"data: " + orjson.dumps(usage) + b"\n\n",
        b"data: [DONE]\n\n",
    ]


def words_of(text: str) -> list[str]:
    """``text`` cut into stream tokens that join back to it."""
    return re.findall(r"\S+\s*|\s+", text) or [text]


def chat_answer(text: str, stream: bool, framing: Framing = "length") -> bytes:
    """A complete, correct answer carrying ``text``: JSON, or an SSE stream."""
    if not stream:
        return response(chat_json(text), framing)
    events = sse_events(words_of(text))
    return response(b"".join(events), framing, content_type=b"text/event-stream", chunks=events)


def echo(prefix: str = "echo ") -> Script:
    """A healthy upstream: answers every request with ``prefix`` + its content, as asked."""

    def script(request: Received) -> Reply:
        return Reply((chat_answer(prefix + request.content, request.stream),))

    return script


def answering(text: str) -> Script:
    """A healthy upstream that answers every request with ``text``, as asked."""

    def script(request: Received) -> Reply:
        return Reply((chat_answer(text, request.stream),))

    return script


def encode(coding: str, data: bytes) -> bytes:
    """``data`` in a content coding (``raw-deflate`` is deflate without its zlib wrapper)."""
    if coding in ("gzip", "x-gzip"):
        compressor = zlib.compressobj(wbits=31)
    elif coding == "deflate":
        compressor = zlib.compressobj(wbits=15)
    elif coding == "raw-deflate":
        compressor = zlib.compressobj(wbits=-15)
    else:
        return data
    return compressor.compress(data) + compressor.flush()


# --- the router -----------------------------------------------------------------------


def route_doc(*peers: RawPeer, **resilience: dict[str, Any]) -> dict[str, Any]:
    """A ModelRoute whose model ``chat-fast`` tries ``peers`` in order, one provider each.

    Active health checks are off (a probe would be one more request in the peer's
    log) and backoffs are short; each keyword is a ``spec.resilience`` section.
    """
    sections: dict[str, dict[str, Any]] = {
        "healthCheck": {"enabled": False},
        "retries": {"backoff": {"base": "1ms", "max": "5ms"}},
    }
    for name, values in resilience.items():
        sections[name] = {**sections.get(name, {}), **values}
    return {
        "apiVersion": "modelroute.io/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "raw"},
        "spec": {
            "regions": [{"name": "us-east-1"}],
            "providers": [
                {"name": f"p{i}", "endpoints": [{"region": "us-east-1", "baseURL": peer.url}]}
                for i, peer in enumerate(peers)
            ],
            "models": [
                {
                    "name": "chat-fast",
                    "targets": [
                        {"provider": f"p{i}", "model": "upstream-model"} for i in range(len(peers))
                    ],
                }
            ],
            "resilience": sections,
        },
    }


@contextlib.asynccontextmanager
async def running_router(doc: dict[str, Any]) -> AsyncIterator[RouterServer]:
    """A router in this process, on a free loopback port, for one scenario."""
    with tempfile.TemporaryDirectory(prefix="modelroute-raw-") as tmp:
        config = Path(tmp) / "route.yaml"
        config.write_text(yaml.safe_dump(doc))
        router = RouterServer(config, secrets_dir=Path(tmp) / "secrets", reload_interval=3600.0)
        await router.start()
        try:
            yield router
        finally:
            await router.close()


# --- the raw client -------------------------------------------------------------------


def post(path: bytes, body: bytes, *headers: bytes) -> bytes:
    """A well-formed POST with a JSON body; ``headers`` are extra lines without line ends."""
    lines = [b"POST " + path + b" HTTP/1.1", b"host: router", b"content-type: application/json"]
    lines += headers
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def ask(content: str, stream: bool = False) -> bytes:
    """A chat completion request for model ``chat-fast`` whose message is ``content``."""
    payload: dict[str, Any] = {
        "model": "chat-fast",
        "messages": [{"role": "user", "content": content}],
    }
    if stream:
        payload["stream"] = True
    return post(b"/v1/chat/completions", orjson.dumps(payload))


@dataclass
class Answer:
    """One response from the router, exactly as it came."""

    status: int
    headers: list[tuple[bytes, bytes]]  # names lower-cased
    body: bytes  # de-chunked
    complete: bool  # the body ended where its framing said (a length, the last chunk, a close)
    hung: bool = False  # the body stopped and the connection stayed open past the deadline
    interim: list[int] = field(default_factory=list)  # 1xx responses before this one

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def sse(self) -> Sse:
        return Sse.parse(self.body)

    def __str__(self) -> str:
        shown = b" ".join(
            b"%s=%s" % (k, v[:60])
            for k, v in self.headers
            if k in (b"content-type", b"content-encoding", b"x-modelroute-attempts")
        )
        state = "hung" if self.hung else "complete" if self.complete else "cut short"
        return (
            f"{self.status} [{shown.decode('latin-1')}] body ({len(self.body)} bytes, {state}): "
            f"{_clip(self.body)}"
        )


@dataclass
class NoAnswer:
    """The router sent no (complete) response head."""

    closed: bool  # it closed or reset the connection; False: kept it open past the deadline
    received: bytes  # what it did send

    def __str__(self) -> str:
        how = "closed the connection" if self.closed else "kept the connection open, silent"
        return f"no answer: the router {how} after sending {_clip(self.received)}"


Outcome = Answer | NoAnswer


def _clip(data: bytes, limit: int = 400) -> str:
    """``data`` for a failure message: whole if short, else its start and its end."""
    if len(data) <= limit:
        return repr(data)
    half = limit // 2
    return f"{data[:half]!r} ...({len(data) - 2 * half} bytes)... {data[-half:]!r}"


class _Wire(asyncio.Protocol):
    """Bytes in, bytes out, and how the connection ended: nothing hidden."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.ended = False
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool | None:
        self.ended = True
        self._wake()
        return True  # keep our side open: the request may still be going out

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.transport = None
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def more(self) -> bool:
        """Wait for more bytes; False once the connection has ended."""
        if self.ended:
            return False
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        return True

    async def send(self, parts: Sequence[bytes]) -> None:
        """Write ``parts`` with flow control; stop quietly if the router hangs up."""
        for part in parts:
            view = memoryview(part)
            for start in range(0, len(view), WRITE_SLICE):
                if self.transport is None or self.transport.is_closing():
                    return
                self.transport.write(view[start : start + WRITE_SLICE])
                if self._writable is not None:
                    await self._writable


class _Cut(Exception):
    """The connection ended before what was being read was complete."""


class RawClient:
    """One client connection to the router: raw requests, responses read as they come."""

    def __init__(self, wire: _Wire) -> None:
        self._wire = wire
        self._sender: asyncio.Task[None] | None = None
        self._partial: Answer | None = None  # the answer being read, for a timeout mid-body

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        _, wire = await asyncio.get_running_loop().create_connection(_Wire, "127.0.0.1", port)
        return cls(wire)

    def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self._wire.transport is not None:
            self._wire.transport.abort()

    async def request(
        self, data: bytes | Sequence[bytes], *, timeout: float = 10.0, head_only: bool = False
    ) -> Outcome:
        """Send a request (written while the answer is read) and read one response.

        ``timeout`` bounds the whole answer; a 1xx is interim unless it carries
        what only a final answer has (a Content-Length, ``x-modelroute-*``).
        """
        parts = [data] if isinstance(data, bytes) else list(data)
        self._sender = asyncio.get_running_loop().create_task(self._wire.send(parts))
        try:
            async with asyncio.timeout(timeout) as scope:
                return await self._read(head_only)
        except TimeoutError:
            if scope.expired() and self._partial is not None:
                self._partial.hung = True
                self._partial.complete = False
                return self._partial
            return NoAnswer(closed=False, received=bytes(self._wire.buffer))
        finally:
            if self._sender.done():
                self._sender = None

    async def _until(self, mark: bytes) -> bytes:
        wire = self._wire
        while (end := wire.buffer.find(mark)) < 0:
            if not await wire.more():
                raise _Cut
        data = bytes(wire.buffer[: end + len(mark)])
        del wire.buffer[: end + len(mark)]
        return data

    async def _exactly(self, size: int, into: bytearray) -> None:
        wire = self._wire
        while len(wire.buffer) < size:
            if not await wire.more():
                into += wire.buffer
                wire.buffer.clear()
                raise _Cut
        into += wire.buffer[:size]
        del wire.buffer[:size]

    async def _read(self, head_only: bool) -> Outcome:
        self._partial = None
        interim: list[int] = []
        while True:
            try:
                head = await self._until(b"\r\n\r\n")
            except _Cut:
                return NoAnswer(closed=True, received=bytes(self._wire.buffer))
            status, headers = _parse_head(head)
            final = any(
                n == b"content-length" or n.startswith(b"x-modelroute-") for n, _ in headers
            )
            if 100 <= status < 200 and not final:
                interim.append(status)
                continue
            break
        body = bytearray()
        answer = Answer(status, headers, b"", complete=False, interim=interim)
        self._partial = answer
        length = answer.header(b"content-length")
        coding = (answer.header(b"transfer-encoding") or b"").lower()
        try:
            if head_only or status < 200 or status in (204, 304):
                pass
            elif b"chunked" in coding:
                await self._chunked(body, answer)
            elif length is not None:
                await self._exactly(int(length), body)
            else:
                while await self._wire.more():
                    pass
                body += self._wire.buffer
                self._wire.buffer.clear()
            answer.complete = True
        except _Cut:
            pass
        finally:
            answer.body = bytes(body)
        return answer

    async def _chunked(self, body: bytearray, answer: Answer) -> None:
        while True:
            line = await self._until(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                await self._until(b"\r\n")  # the router sends no trailers
                return
            await self._exactly(size, body)
            answer.body = bytes(body)
            crlf = bytearray()
            await self._exactly(2, crlf)


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    assert len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit(), (
        f"the router sent a malformed status line: {lines[0]!r}"
    )
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon and name == name.strip(), f"the router sent a malformed header line {line!r}"
        headers.append((name.lower(), value.strip()))
    return int(parts[1]), headers


async def exchange(
    port: int, data: bytes | Sequence[bytes], *, timeout: float = 10.0, head_only: bool = False
) -> Outcome:
    """One request on a new connection, and its response."""
    client = await RawClient.connect(port)
    try:
        return await client.request(data, timeout=timeout, head_only=head_only)
    finally:
        client.close()


# --- reading answers ------------------------------------------------------------------


@dataclass
class Sse:
    """An SSE body: its events' data (JSON, "[DONE]", or the raw bytes if not JSON)."""

    events: list[Any]
    tail: bytes  # bytes after the last complete event (an event cut in half)
    strays: list[bytes]  # lines that are no SSE field: a client drops them, events and all

    FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")

    @classmethod
    def parse(cls, body: bytes) -> Sse:
        blocks = body.replace(b"\r\n", b"\n").split(b"\n\n")
        events: list[Any] = []
        strays: list[bytes] = []
        for block in blocks[:-1]:
            lines = block.split(b"\n")
            strays += [line for line in lines if line and not line.startswith(cls.FIELDS)]
            data = [line[5:].lstrip(b" ") for line in lines if line.startswith(b"data:")]
            if not data:
                continue
            joined = b"\n".join(data)
            if joined == b"[DONE]":
                events.append("[DONE]")
                continue
            try:
                events.append(orjson.loads(joined))
            except orjson.JSONDecodeError:
                events.append(joined)
        return cls(events, blocks[-1], strays)

    @property
    def text(self) -> str:
        """The content the stream carried, joined."""
        out = ""
        for event in self.events:
            if isinstance(event, dict):
                for choice in event.get("choices") or []:
                    if isinstance(choice, dict):
                        out += (choice.get("delta") or {}).get("content") or ""
                        out += choice.get("text") or ""
        return out

    @property
    def done(self) -> bool:
        return bool(self.events) and self.events[-1] == "[DONE]"

    @property
    def ends_in_error(self) -> bool:
        return bool(self.events) and openai_error(self.events[-1])


def openai_error(value: Any) -> bool:
    """Whether ``value`` is an error in OpenAI's shape: ``{"error": {"message", "type", ...}}``."""
    if not isinstance(value, dict) or not isinstance(value.get("error"), dict):
        return False
    error = value["error"]
    return isinstance(error.get("message"), str) and isinstance(error.get("type"), str)


def answer_text(answer: Answer) -> str | None:
    """The message text of a non-streaming chat answer; None if the body is not one."""
    try:
        payload = answer.json()
        text = payload["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None


def error_answer(answer: Answer) -> bool:
    """A complete answer whose body is an OpenAI-shaped JSON error."""
    if not answer.complete:
        return False
    try:
        return openai_error(answer.json())
    except orjson.JSONDecodeError:
        return False


# --- memory ---------------------------------------------------------------------------


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(key)


class PeakRss:
    """How far this process's resident memory rose above where it was on entry (Linux).

    On entry freed heap goes back to the system (so earlier scenarios cannot hide
    growth in memory already resident) and the kernel's high-water mark is reset;
    on exit :attr:`growth` is the peak minus the start, in bytes.
    """

    growth = 0

    def __enter__(self) -> PeakRss:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        self._start = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.growth = (_status_kib("VmHWM") - self._start) * 1024
