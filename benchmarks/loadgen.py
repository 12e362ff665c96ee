"""The load generator: keep-alive HTTP/1.1 at asyncio's protocol layer, in its own process.

It shares a core with the simulated upstream, so every microsecond it spends
on a request is one the upstream does not get: it is written at the
protocol layer with httptools on uvloop (a few µs per request) rather than
with aiohttp's client (tens of µs), and it never parses JSON in the timed
path.

It also keeps the books. It reads the proxy's CPU time, the machine's steal
and the cores' busy time at the exact moments the measurement window opens
and closes, so connection set-up and warm-up are never billed to the proxy,
and it times requests from when they were due (open loop) so a stalled proxy
cannot hide behind a load generator that waits for it.

Modes:

* ``closed``: ``concurrency`` connections, each sending its next request as
  soon as the previous answer is complete;
* ``open``: requests due at a fixed ``rate`` whatever the answers do, on a
  pool of connections that grows when all are busy;
* ``streams``: ``concurrency`` long streams held open at once, started
  evenly over ``ramp`` seconds; records the gaps between chunks.

Usage (run.py does this): ``python benchmarks/loadgen.py < job.json`` prints
one JSON list of results, one per target, on stdout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, cast

import httptools
import orjson
import procstat

FIRST_TOKEN = b"tok0"  # the simulator's first content token: marks time to first token
DONE = b"[DONE]"
MAX_OPEN_LOOP_CONNECTIONS = 1024
ERROR_SAMPLES = 5

Payload = tuple[bytes, bool]  # the request bytes, and whether it asks for a stream


# --- the job -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send requests, and which processes to bill (none for direct)."""

    name: str
    port: int
    pids: list[int]
    load_pids: list[int]  # the simulated upstream; the load generator adds itself


@dataclass(frozen=True, slots=True)
class Job:
    """One scenario, run against each target in turn."""

    targets: list[Target]
    mode: str  # closed | open | streams
    warmup: float
    duration: float = 0.0
    requests: int = 0  # closed mode: end the window after this many answers instead
    concurrency: int = 1
    rate: float = 0.0
    stream: bool = False
    stream_every: int = 0  # closed mode: every Nth request streams (a mixed workload)
    image_b64_bytes: int = 0  # size of a base64 image part in the user message
    ramp: float = 0.0
    gap_floor_ms: float = 0.0  # gaps shorter than this are bursts, not waits between tokens
    settle: float = 0.0  # pause after each target, for the upstream to clean up
    model: str = "chat"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        targets = [Target(**t) for t in data.pop("targets")]
        return cls(targets=targets, **data)


# --- requests --------------------------------------------------------------------------

# Headers the official OpenAI Python SDK sends, so proxies forward a realistic set.
SDK_HEADERS = (
    b"accept: application/json\r\n"
    b"accept-encoding: gzip, deflate\r\n"
    b"authorization: Bearer sk-bench-client-key\r\n"
    b"content-type: application/json\r\n"
    b"user-agent: OpenAI/Python 1.54.0\r\n"
    b"x-stainless-arch: x64\r\n"
    b"x-stainless-async: async:asyncio\r\n"
    b"x-stainless-lang: python\r\n"
    b"x-stainless-os: Linux\r\n"
    b"x-stainless-package-version: 1.54.0\r\n"
    b"x-stainless-retry-count: 0\r\n"
    b"x-stainless-runtime: CPython\r\n"
    b"x-stainless-runtime-version: 3.12.7\r\n"
)


def chat_body(model: str, stream: bool, image_b64_bytes: int) -> bytes:
    """A chat completion request; with an image part when ``image_b64_bytes`` is set."""
    content: Any = "Summarise the plot of Hamlet in two sentences."
    if image_b64_bytes:
        raw = os.urandom(image_b64_bytes * 3 // 4)
        url = "data:image/png;base64," + base64.b64encode(raw).decode()
        content = [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
        ]
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": content},
        ],
        "max_tokens": 256,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def request_bytes(port: int, body: bytes) -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n" % port
    return head + SDK_HEADERS + b"content-length: %d\r\n\r\n" % len(body) + body


def payloads(job: Job, port: int) -> list[Payload]:
    """The requests a worker cycles through (one, or a streaming one every Nth)."""
    plain = request_bytes(port, chat_body(job.model, job.stream, job.image_b64_bytes))
    if not job.stream_every:
        return [(plain, job.stream)]
    streaming = request_bytes(port, chat_body(job.model, True, job.image_b64_bytes))
    return [(plain, False)] * (job.stream_every - 1) + [(streaming, True)]


# --- the books --------------------------------------------------------------------------


@dataclass
class Recorder:
    """What happened inside the measurement window, and nothing outside it."""

    gap_floor: float
    measuring: bool = False
    stopping: bool = False
    t_open: float = 0.0
    t_close: float = 0.0
    ok: int = 0
    errors: int = 0
    events: int = 0  # SSE events received (streams), for CPU per chunk
    samples: list[str] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    wanted: int = 0
    reached: asyncio.Future[None] | None = None

    def open(self) -> None:
        self.t_open = perf_counter()
        self.measuring = True

    def close(self) -> None:
        self.t_close = perf_counter()
        self.measuring = False

    def success(self, started: float, conn: Conn, stream: bool) -> None:
        if not self.measuring:
            return
        self.ok += 1
        self.latency.append(conn.finished - started)
        if stream:
            if conn.first_content:
                self.ttft.append(conn.first_content - started)
            self.add_gaps(conn.marks, conn.finished)
        self._count()

    def failure(self, reason: str) -> None:
        if not self.measuring:
            return
        self.errors += 1
        if len(self.samples) < ERROR_SAMPLES:
            self.samples.append(reason)
        self._count()

    def add_gaps(self, marks: list[float], until: float) -> None:
        """Waits between chunk arrivals that end inside the window."""
        floor = self.gap_floor
        for before, after in itertools.pairwise(marks):
            if self.t_open <= after <= until and after - before >= floor:
                self.gaps.append(after - before)

    def _count(self) -> None:
        reached = self.reached
        if reached is not None and not reached.done() and self.ok + self.errors >= self.wanted:
            reached.set_result(None)


# --- one connection --------------------------------------------------------------------


class Conn(asyncio.Protocol):
    """One keep-alive client connection with at most one request in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop, rec: Recorder) -> None:
        self._loop = loop
        self._rec = rec
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._now = 0.0
        self.status = 0
        self.keep_alive = True
        self.busy = False
        self.track = False
        self.finished = 0.0
        self.first_content = 0.0
        self.marks: list[float] = []
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(exc or ConnectionResetError("closed by the server"))

    def data_received(self, data: bytes) -> None:
        self._now = perf_counter()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed response: {exc}"))
            self.abort()

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.track:
            now = self._now
            if not self.marks or self.marks[-1] != now:
                self.marks.append(now)
            if not self.first_content and FIRST_TOKEN in body:
                self.first_content = now
            if self._rec.measuring:
                self._rec.events += body.count(b"\n\n")
            self.tail = (self.tail + body)[-32:]
        else:
            self.tail = body[-32:]

    def on_message_complete(self) -> None:
        self.finished = self._now
        self.keep_alive = self._parser.should_keep_alive()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def exchange(self, payload: bytes, track: bool) -> None:
        """Send one request and wait for the whole answer."""
        if self.transport is None:
            raise ConnectionResetError("connection is closed")
        self.status = 0
        self.first_content = 0.0
        self.track = track
        self.marks = []
        self.tail = b""
        self._waiter = self._loop.create_future()
        self.busy = True
        try:
            self.transport.write(payload)
            await self._waiter
        finally:
            self.busy = False
            self._waiter = None

    def answered_well(self, stream: bool) -> bool:
        return self.status == 200 and (not stream or DONE in self.tail)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Client:
    """Opens connections to one target and remembers them, to abort them at the end."""

    def __init__(self, port: int, rec: Recorder) -> None:
        self._loop = asyncio.get_running_loop()
        self._port = port
        self._rec = rec
        self.conns: list[Conn] = []

    async def connect(self) -> Conn:
        _, conn = await self._loop.create_connection(
            lambda: Conn(self._loop, self._rec), "127.0.0.1", self._port
        )
        self.conns.append(conn)
        return conn

    async def reconnect(self, conn: Conn | None) -> Conn:
        """A fresh connection in place of one that failed; retries while the target recovers."""
        if conn is not None:
            conn.abort()
            with contextlib.suppress(ValueError):
                self.conns.remove(conn)
        while True:
            try:
                return await self.connect()
            except OSError as exc:
                self._rec.failure(f"connect: {exc}")
                await asyncio.sleep(0.05)

    def abort_all(self) -> None:
        for conn in self.conns:
            conn.abort()


# --- the three ways of sending -------------------------------------------------------------


async def _send(
    client: Client, conn: Conn, payload: Payload, started: float, rec: Recorder
) -> Conn:
    """One request on ``conn``; returns the connection to use next (a new one on failure)."""
    data, stream = payload
    try:
        await conn.exchange(data, stream)
    except (ConnectionError, OSError) as exc:
        if not rec.stopping:
            rec.failure(f"{type(exc).__name__}: {exc}")
            return await client.reconnect(conn)
        return conn
    if conn.answered_well(stream):
        rec.success(started, conn, stream)
    else:
        rec.failure(f"status {conn.status}, ends {conn.tail[-24:]!r}")
    if not conn.keep_alive:
        return await client.reconnect(conn)
    return conn


async def closed_worker(
    client: Client, work: list[Payload], rec: Recorder, index: int, delay: float
) -> None:
    """Send the next request as soon as the last one is answered, until told to stop."""
    if delay:
        await asyncio.sleep(delay)
    conn = await client.reconnect(None)
    i = index
    while not rec.stopping:
        payload = work[i % len(work)]
        i += 1
        conn = await _send(client, conn, payload, perf_counter(), rec)


async def open_loop(client: Client, work: list[Payload], rec: Recorder, job: Job) -> None:
    """Send requests when they are due, whatever the answers do (no coordinated omission)."""
    loop = asyncio.get_running_loop()
    idle = [await client.reconnect(None) for _ in range(job.concurrency)]
    opened = len(idle)
    waiting: deque[asyncio.Future[Conn]] = deque()
    tasks: set[asyncio.Task[None]] = set()

    async def one(due: float, payload: Payload) -> None:
        nonlocal opened
        if idle:
            conn = idle.pop()
        elif opened < MAX_OPEN_LOOP_CONNECTIONS:
            opened += 1
            conn = await client.reconnect(None)
        else:
            future: asyncio.Future[Conn] = loop.create_future()
            waiting.append(future)
            conn = await future
        conn = await _send(client, conn, payload, due, rec)
        if waiting:
            waiting.popleft().set_result(conn)
        else:
            idle.append(conn)

    interval = 1.0 / job.rate
    due = perf_counter()
    sent = 0
    while not rec.stopping:
        now = perf_counter()
        while due <= now:
            task = loop.create_task(one(due, work[sent % len(work)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            due += interval
            sent += 1
        await asyncio.sleep(max(0.0, due - perf_counter()))
    if tasks:
        await asyncio.wait(tasks, timeout=10)


# --- one target ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counters read at one edge of the measurement window."""

    at: float
    proxy: tuple[int, int]  # ns on CPU, ns waiting for a CPU
    load: tuple[int, int]  # the same for load generator + simulator
    own: tuple[int, int]  # the same for the load generator alone
    jiffies: tuple[int, int]  # machine: all, stolen


def snapshot(target: Target) -> Snapshot:
    return Snapshot(
        at=perf_counter(),
        proxy=procstat.sched(target.pids),
        load=procstat.sched([os.getpid(), *target.load_pids]),
        own=procstat.schedstat(os.getpid()),
        jiffies=procstat.steal_jiffies(),
    )


def start_workers(
    job: Job, client: Client, work: list[Payload], rec: Recorder
) -> list[asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    if job.mode == "open":
        return [loop.create_task(open_loop(client, work, rec, job))]
    spread = job.ramp / job.concurrency if job.mode == "streams" else 0.0
    return [
        loop.create_task(closed_worker(client, work, rec, i, i * spread))
        for i in range(job.concurrency)
    ]


async def measure(job: Job, target: Target, rec: Recorder, client: Client) -> dict[str, Any]:
    """Open the window, wait out its length (or request count), close it; the readings."""
    before = snapshot(target)
    rec.open()
    extra: dict[str, Any] = {}
    if job.requests:
        rec.wanted = job.requests
        rec.reached = asyncio.get_running_loop().create_future()
        await rec.reached
    elif job.mode == "streams":
        await asyncio.sleep(job.duration / 2)
        extra["rss_mid_kib"] = procstat.rss_kib(target.pids)
        extra["open_streams_mid"] = sum(1 for conn in client.conns if conn.busy)
        await asyncio.sleep(job.duration / 2)
    else:
        await asyncio.sleep(job.duration)
    after = snapshot(target)
    rec.close()
    return {"before": before, "after": after, **extra}


async def run_target(job: Job, target: Target) -> dict[str, Any]:
    rec = Recorder(gap_floor=job.gap_floor_ms / 1000)
    client = Client(target.port, rec)
    work = payloads(job, target.port)
    rss_before = procstat.rss_kib(target.pids)
    workers = start_workers(job, client, work, rec)
    await asyncio.sleep(job.warmup + job.ramp)
    readings = await measure(job, target, rec, client)
    rec.stopping = True
    if job.mode == "streams":
        for conn in client.conns:
            if conn.busy:
                rec.add_gaps(conn.marks, rec.t_close)
        client.abort_all()
    _, pending = await asyncio.wait(workers, timeout=15)
    for task in pending:
        task.cancel()
    client.abort_all()
    await asyncio.sleep(job.settle)
    return summarise(target, rec, readings, rss_before)


# --- results ---------------------------------------------------------------------------------


def percentiles_ms(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max in milliseconds (nearest rank)."""
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] * 1000

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ordered[-1] * 1000,
        "mean": sum(ordered) / n * 1000,
    }


def summarise(
    target: Target, rec: Recorder, readings: dict[str, Any], rss_before: int
) -> dict[str, Any]:
    before: Snapshot = readings.pop("before")
    after: Snapshot = readings.pop("after")
    elapsed = after.at - before.at

    def share(ns: int) -> float:
        return 100.0 * ns / (elapsed * 1e9)

    cpu_ns = after.proxy[0] - before.proxy[0]
    jiffies = after.jiffies[0] - before.jiffies[0]
    billed = bool(target.pids)
    return {
        "target": target.name,
        "ok": rec.ok,
        "errors": rec.errors,
        "error_samples": rec.samples,
        "elapsed_s": elapsed,
        "rate": rec.ok / elapsed if elapsed > 0 else 0.0,
        "events": rec.events,
        "proxy_cpu_ns": cpu_ns if billed else None,
        "proxy_core_pct": share(cpu_ns) if billed else None,
        "proxy_wait_pct": share(after.proxy[1] - before.proxy[1]) if billed else None,
        "load_side_pct": share(after.load[0] - before.load[0]),
        "load_wait_pct": share(after.load[1] - before.load[1]),
        "loadgen_cpu_ns": after.own[0] - before.own[0],
        "steal_pct": 100.0 * (after.jiffies[1] - before.jiffies[1]) / jiffies if jiffies else 0.0,
        "latency_ms": percentiles_ms(rec.latency),
        "ttft_ms": percentiles_ms(rec.ttft),
        "gap_ms": percentiles_ms(rec.gaps),
        "rss_before_kib": rss_before,
        **readings,
    }


async def main_async(job: Job) -> list[dict[str, Any]]:
    return [await run_target(job, target) for target in job.targets]


def run(job: Job) -> list[dict[str, Any]]:
    """Run the job on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # the benchmark still runs, just with a slower load generator
        return asyncio.run(main_async(job))
    results: list[dict[str, Any]] = uvloop.run(main_async(job))
    return results


def main() -> None:
    job = Job.from_json(orjson.loads(sys.stdin.buffer.read()))
    sys.stdout.buffer.write(orjson.dumps(run(job)))


if __name__ == "__main__":
    main()
