"""Soak: a real router under mixed traffic, broken upstreams and vanishing clients.

    python benchmarks/soak.py --seconds 300      # the long run (issue 16): about 6 minutes
    python benchmarks/soak.py --seconds 8 --warmup 2 --settle 2   # the short one CI runs

A leak, a connection that never goes back to the pool or a task that waits
forever on a vanished client costs little per request and shows only after
thousands of them; no unit test runs long enough to see it. This script runs
``modelroute router`` as shipped (its defaults for retries, timeouts, outlier
detection and health checks) in front of two simulated upstreams
(``modelroute sim``: the route's primary provider on one, its fallback on the
other), then:

* ``--clients`` keep-alive clients send chat completions back to back, half
  of them streaming; some clients go away on purpose: after half the request
  body (``mid-body``), after the whole request but before the answer
  (``before-answer``), or after the first chunk of a stream (``mid-stream``);
  a client that waits longer than ``--client-timeout`` gives up too;
* every 1.5 s the upstreams change behaviour (``/sim/behaviour``): injected
  5xx, 429 and 503 with ``Retry-After``, a connection that dies after a few
  tokens, refused connections, a stall, an error event before any content,
  slow first bytes; each fault goes to the primary and the fallback in turn;
* every answer is checked: a complete one is exactly the simulator's text;
  an error is an HTTP status, an SSE error event or a cut connection the
  client can tell from an end. A 200 that ends without its end (no
  ``[DONE]``, no error event) or holds a different answer is a *silent*
  failure, and fails the soak.

The router's figures are read from ``/proc`` at two quiet moments, with no
client connected and the upstreams healthy again: after ``--warmup`` seconds
of the same traffic, and after the ``--seconds`` run plus ``--settle``.
Before each, a few requests in a row must succeed (the router still serves).
The checks:

* the router stayed up, drains cleanly on SIGTERM at the end (exit status
  0) and logged no traceback;
* RSS grew by at most ``--max-rss-growth-mib`` after the warm-up;
* open file descriptors, upstream connections aside, are back to the warm-up
  count (plus ``--fd-slack``);
* no upstream connection is stuck: every one the router holds is
  ESTABLISHED (none that the upstream closed and the router kept:
  CLOSE_WAIT), no request is still running at either upstream, and each
  upstream has at most one per client plus one per probed endpoint: what an
  idle pool can hold when the router never uses more than one upstream
  connection per client request. Idle pooled connections may stay: the pool
  keeps the most it needed at once, and an upstream closes them in its own
  time (the simulator after 75 s);
* no silent truncation or wrong answer.

Exit status 0 when every check passes, 1 when one fails (each failure is
printed), 2 when something fails to start. The last line sums up the figures.
Needs Linux (``/proc``) and the project installed; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loadgen
import orjson
import procstat
import services
import yaml

PHASE_SECONDS = 1.5
TOKENS = 16
DIE_AFTER = 4  # tokens before the connection dies in the die-mid-answer phase


def answer(tokens: int) -> str:
    """What the simulator answers, whole: "tok0 tok1 ..."."""
    return " ".join(f"tok{i}" for i in range(tokens))


# A stream's whole answer: all tokens, or DIE_AFTER of them and a clean end when the
# die-mid-answer phase ended mid-stream (the simulator reads the fault again after the
# tokens: it sends the end instead of cutting the connection).
EXPECTED = (answer(TOKENS), answer(DIE_AFTER))
SANE_IN_A_ROW = 4  # requests in a row that must succeed before each reading

# Every fault field at its healthy value: each phase starts from this.
HEALTHY: dict[str, Any] = {
    "latency_ms": 0,
    "tokens": TOKENS,
    "token_delay_ms": 2,  # each chunk its own write, so a client can leave mid-stream
    "fail_rate": 0.0,
    "fail_status": 500,
    "retry_after": None,
    "stall": False,
    "die_after_tokens": None,
    "stream_error_before_content": False,
    "refuse": False,
}


@dataclass(frozen=True)
class Phase:
    """How the upstreams behave for PHASE_SECONDS: changes from HEALTHY.

    The changes go to one upstream, the primary and the fallback in turn (the
    router may have taken one out of rotation), or with ``both`` to both.
    """

    name: str
    changes: dict[str, Any] = field(default_factory=dict)
    both: bool = False


PHASES = (
    Phase("5xx", {"fail_rate": 0.3, "fail_status": 500}),
    Phase("die-mid-answer", {"die_after_tokens": DIE_AFTER}),
    Phase("429-retry-after", {"fail_rate": 0.5, "fail_status": 429, "retry_after": 1}),
    Phase("stall", {"stall": True}),
    Phase("refuse", {"refuse": True}),
    Phase("error-event", {"stream_error_before_content": True}),
    Phase("both-503", {"fail_rate": 0.4, "fail_status": 503, "retry_after": 1}, both=True),
    Phase("slow", {"latency_ms": 200}),
    Phase("healthy"),
)  # an odd number: each fault reaches the other upstream on the next cycle


# What a client does next, and how often.
KINDS = ("plain", "stream", "mid-stream", "before-answer", "mid-body")
WEIGHTS = (42, 42, 6, 5, 5)
SILENT = ("truncated", "wrong-answer")  # failures a client cannot tell from success
SAMPLES = 3  # silent failures printed as seen


# --- what the clients saw ---------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    """Exchanges finished, whatever their outcome (deliberate disconnects included)."""
    ok: int = 0
    streams_ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    disconnects: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    silent: list[str] = field(default_factory=list)
    """The first few silent failures, as the client saw them."""

    def line(self) -> str:
        return (
            f"requests {self.requests}, ok {self.ok} ({self.streams_ok} streams), "
            f"failed {self.failed.total()}, client disconnects {self.disconnects.total()}"
        )


def by_kind(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.most_common()) or "none"


# --- one client -----------------------------------------------------------------------------


class Gone(Exception):
    """The router closed the connection or cut the answer short; ``kind`` says when."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise Gone("closed-before-answer") from exc
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def body_chunks(
    reader: asyncio.StreamReader, headers: dict[bytes, bytes]
) -> AsyncIterator[bytes]:
    """The body as it arrives, by its framing; Gone when the connection ends before that."""
    try:
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                yield (await reader.readexactly(size + 2))[:-2]
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
        elif (length := headers.get(b"content-length")) is not None:
            yield await reader.readexactly(int(length))
        else:  # delimited by the close
            while data := await reader.read(65536):
                yield data
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise Gone("cut-mid-answer") from exc


def judge(status: int, body: bytes, stream: bool) -> str:
    """``ok``, or the kind of failure a finished answer is."""
    if status != 200:
        return f"http-{status}"
    if not stream:
        try:
            content = orjson.loads(body)["choices"][0]["message"]["content"]
        except (orjson.JSONDecodeError, LookupError, TypeError):
            return "wrong-answer"
        return "ok" if content == EXPECTED[0] else "wrong-answer"
    text: list[str] = []
    for event in body.split(b"\n\n"):
        data = b"".join(line[5:].strip() for line in event.split(b"\n") if line[:5] == b"data:")
        if not data:
            continue
        if data == b"[DONE]":
            return "ok" if "".join(text) in EXPECTED else "wrong-answer"
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return "wrong-answer"
        if "error" in chunk:
            return "stream-error"
        for choice in chunk.get("choices", ()):
            text.append(choice.get("delta", {}).get("content") or "")
    return "truncated"


class Client:
    """One keep-alive connection at a time, one request in flight on it."""

    def __init__(self, port: int, tally: Tally, timeout: float) -> None:
        self.port = port
        self.tally = tally
        self.timeout = timeout
        self.busy = False
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._plain = loadgen.request_bytes(port, loadgen.chat_body(services.ROUTE_MODEL, False, 0))
        self._stream = loadgen.request_bytes(port, loadgen.chat_body(services.ROUTE_MODEL, True, 0))

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self.busy = True
                await self.exchange(random.choices(KINDS, WEIGHTS)[0])
                self.busy = False
        finally:
            if self.busy:  # cancelled at the end of the traffic, mid-exchange
                self.tally.disconnects["at-stop"] += 1
            self.drop()

    def drop(self, hard: bool = False) -> None:
        """Close the connection: with a FIN, or with ``hard`` a reset when data is unread."""
        if self._conn is not None:
            writer = self._conn[1]
            self._conn = None
            if hard:
                writer.transport.abort()
            else:
                writer.close()

    async def exchange(self, kind: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                outcome = await self._exchange(kind)
        except TimeoutError:
            outcome = "client-timeout"
        except Gone as gone:
            outcome = gone.kind
        except ConnectionError:
            outcome = "closed-before-answer"
        self.tally.requests += 1
        if outcome in KINDS:
            self.tally.disconnects[outcome] += 1
        elif outcome == "ok":
            self.tally.ok += 1
            self.tally.streams_ok += kind == "stream"
        else:
            self.tally.failed[outcome] += 1
        if outcome != "ok":
            self.drop(hard=random.random() < 0.5)

    async def _exchange(self, kind: str) -> str:
        """Send one request; the outcome, or the kind itself for a deliberate disconnect."""
        if self._conn is None:
            try:
                self._conn = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return "connect-failed"
        reader, writer = self._conn
        stream = kind in ("stream", "mid-stream")
        payload = self._stream if stream else self._plain
        if kind == "mid-body":
            body_starts = payload.index(b"\r\n\r\n") + 4
            writer.write(payload[: (body_starts + len(payload)) // 2])
            await writer.drain()
            await asyncio.sleep(random.uniform(0, 0.02))
            return kind
        writer.write(payload)
        if kind == "before-answer":
            await asyncio.sleep(random.uniform(0, 0.03))  # an answer takes 32 ms or more
            return kind
        status, headers = await read_head(reader)
        chunks = body_chunks(reader, headers)
        if kind == "mid-stream" and status == 200:
            await anext(chunks, b"")
            return kind
        body = b"".join([chunk async for chunk in chunks])
        if headers.get(b"connection", b"").lower() == b"close" or not (
            b"content-length" in headers or b"transfer-encoding" in headers
        ):
            self.drop()
        outcome = judge(status, body, stream)
        if outcome in SILENT and len(self.tally.silent) < SAMPLES:
            self.tally.silent.append(f"{outcome}: {status} {headers} {body[-600:]!r}")
        return outcome


async def still_serving(port: int, timeout: float) -> bool:
    """SANE_IN_A_ROW requests in a row (plain and streaming) succeed within ``timeout``."""
    tally = Tally()
    client = Client(port, tally, timeout)
    deadline = time.monotonic() + timeout
    in_a_row = 0
    try:
        while in_a_row < SANE_IN_A_ROW and time.monotonic() < deadline:
            before = tally.ok
            await client.exchange("stream" if in_a_row % 2 else "plain")
            in_a_row = in_a_row + 1 if tally.ok > before else 0
            if not in_a_row:
                await asyncio.sleep(0.2)  # a cooldown or an ejection to wait out
    finally:
        client.drop()
    return in_a_row >= SANE_IN_A_ROW


# --- the upstreams' faults ----------------------------------------------------------------


async def set_behaviour(port: int, changes: dict[str, Any]) -> None:
    await asyncio.to_thread(services.sim_admin, port, "/sim/behaviour", {**HEALTHY, **changes})


async def inject_faults(
    sims: list[int], phases: Iterator[tuple[int, Phase]], tally: Tally, stop: asyncio.Event
) -> None:
    """Change the upstreams' behaviour every PHASE_SECONDS until ``stop``."""
    while not stop.is_set():
        turn, phase = next(phases)
        hit = sims if phase.both else [sims[turn % len(sims)]]
        await asyncio.gather(
            *(set_behaviour(port, phase.changes if port in hit else {}) for port in sims)
        )
        if phase.changes:
            tally.faults[phase.name] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PHASE_SECONDS)


# --- what the kernel says about the router -------------------------------------------------

TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
    "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}  # fmt: skip


@dataclass(frozen=True)
class Reading:
    """The router's RSS, open descriptors and TCP sockets to each upstream, by state."""

    rss_kib: int
    fds: int
    upstream: dict[str, Counter[str]]

    @classmethod
    def take(cls, pid: int, sims: dict[int, str]) -> Reading:
        proc = procstat.PROC / str(pid)
        inodes = set()
        fds = 0
        for fd in (proc / "fd").iterdir():
            fds += 1
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        upstream: dict[str, Counter[str]] = {name: Counter() for name in sims.values()}
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                for row in (proc / "net" / table).read_text().splitlines()[1:]:
                    cols = row.split()
                    port = int(cols[2].rsplit(":", 1)[1], 16)
                    if port in sims and cols[9] in inodes:
                        upstream[sims[port]][TCP_STATES.get(cols[3], cols[3])] += 1
        return cls(procstat.rss_kib([pid]), fds, upstream)

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024

    @property
    def established(self) -> int:
        return sum(states["ESTABLISHED"] for states in self.upstream.values())

    @property
    def stuck(self) -> int:
        """Sockets to an upstream in any state but ESTABLISHED (CLOSE_WAIT: never closed)."""
        return sum(states.total() for states in self.upstream.values()) - self.established

    def line(self) -> str:
        per_sim = ", ".join(
            f"{name} {' '.join(f'{s} {n}' for s, n in sorted(states.items())) or 'none'}"
            for name, states in self.upstream.items()
        )
        return (
            f"router RSS {self.rss_mib:.1f} MiB, open fds {self.fds}, "
            f"upstream connections {self.established} established ({per_sim})"
        )


def tracebacks(log: Path) -> list[str]:
    """Each traceback in the router's log, as its exception and the log line before it."""
    lines = log.read_text(errors="replace").splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            raised = next((e for e in lines[i + 1 :] if e and not e[0].isspace()), "?")
            found.append(f"{raised} (after: {lines[i - 1] if i else ''})")
    return found


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Soak:
    args: argparse.Namespace
    router: services.Service
    sims: dict[int, str]  # port -> name: primary first
    endpoints: int  # per upstream, each probed
    phases: Iterator[tuple[int, Phase]] = field(
        default_factory=lambda: enumerate(itertools.cycle(PHASES))
    )
    peak: Reading | None = None

    @property
    def pid(self) -> int:
        assert self.router.proc is not None
        return self.router.proc.pid

    def alive(self) -> bool:
        return self.router.proc is not None and self.router.proc.poll() is None

    @property
    def exit_status(self) -> str:
        code = self.router.proc.returncode if self.router.proc is not None else None
        return f"signal {-code}" if code is not None and code < 0 else f"status {code}"

    def reading(self) -> Reading:
        return Reading.take(self.pid, self.sims)

    async def traffic(self, seconds: float) -> Tally:
        """Clients and faults for ``seconds``; then clients finish (or are cut) and the sims heal."""
        tally = Tally()
        stop = asyncio.Event()
        clients = [
            Client(self.router.port, tally, self.args.client_timeout)
            for _ in range(self.args.clients)
        ]
        tasks = [asyncio.create_task(c.run(stop)) for c in clients]
        sims = list(self.sims)
        faults = asyncio.create_task(inject_faults(sims, self.phases, tally, stop))
        started = time.monotonic()
        every = max(5.0, seconds / 10)
        while (left := started + seconds - time.monotonic()) > 0:
            await asyncio.sleep(min(every, left))
            if not self.alive():
                break
            now = self.reading()
            if self.peak is None or now.rss_kib > self.peak.rss_kib:
                self.peak = now
            print(
                f"  {time.monotonic() - started:5.0f} s: {tally.line()}; {now.line()}", flush=True
            )
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await faults
        await asyncio.gather(*(set_behaviour(port, {}) for port in sims))
        return tally

    async def quiet_reading(self) -> tuple[Reading, bool, dict[str, Any]]:
        """After traffic: the router still serves? then settle, then the reading and sim stats."""
        serving = await still_serving(self.router.port, timeout=10.0)
        await asyncio.sleep(self.args.settle)
        stats = {
            name: await asyncio.to_thread(services.sim_admin, port, "/sim/stats")
            for port, name in self.sims.items()
        }
        return self.reading(), serving, stats


def upstream_figures(stats: dict[str, Any]) -> str:
    return "; ".join(
        f"{name}: requests {s['requests']}, errors {s['errors']}, aborted {s['aborted']}, "
        f"cancelled {s['cancelled']}, in flight {s['in_flight']}"
        for name, s in stats.items()
    )


async def soak(run: Soak) -> tuple[list[str], str]:
    """Warm-up, a reading, the run, a reading: the failed checks and the summary."""
    args = run.args
    print(f"warm-up: {args.warmup:g} s of the same traffic", flush=True)
    warm = await run.traffic(args.warmup)
    if not run.alive():
        return [f"the router exited during the warm-up: {run.exit_status}"], ""
    start, serving, _ = await run.quiet_reading()
    print(f"start (after warm-up: {warm.line()}):", flush=True)
    print(f"  {start.line()}", flush=True)
    if not serving:
        return ["the router did not answer after the warm-up"], ""

    print(f"run: {args.seconds:g} s, {args.clients} clients", flush=True)
    tally = await run.traffic(args.seconds)
    if not run.alive():
        return [f"the router exited mid-run: {run.exit_status}"], ""
    end, serving, stats = await run.quiet_reading()

    print(f"end (after {args.settle:g} s settle):", flush=True)
    print(f"  {end.line()}", flush=True)
    if run.peak is not None:
        print(f"  highest RSS under load: {run.peak.line()}", flush=True)
    print(f"traffic: {tally.line()}", flush=True)
    print(f"  failed by kind: {by_kind(tally.failed)}", flush=True)
    print(f"  client disconnects by kind: {by_kind(tally.disconnects)}", flush=True)
    print(f"  faults injected ({PHASE_SECONDS:g} s phases): {by_kind(tally.faults)}", flush=True)
    print(f"  upstreams since start: {upstream_figures(stats)}", flush=True)
    for sample in warm.silent + tally.silent:
        print(f"  silent failure: {sample}", flush=True)
    summary = (
        f"seconds={args.seconds:g} clients={args.clients} requests={tally.requests} ok={tally.ok} "
        f"failed={tally.failed.total()} disconnects={tally.disconnects.total()} "
        f"faults={tally.faults.total()} rss_mib={start.rss_mib:.1f}->{end.rss_mib:.1f} "
        f"fds={start.fds}->{end.fds} upstream={start.established}->{end.established} "
        f"upstream_cancelled={sum(s['cancelled'] for s in stats.values())}"
    )
    return check(run, start, end, serving, stats, [warm, tally]), summary


def check(
    run: Soak,
    start: Reading,
    end: Reading,
    serving: bool,
    stats: dict[str, Any],
    tallies: list[Tally],
) -> list[str]:
    """What went wrong, one sentence each (silent failures: in the warm-up too)."""
    args = run.args
    failures = []
    if not serving:
        failures.append(f"the router stopped answering: not {SANE_IN_A_ROW} good answers in a row")
    growth = end.rss_mib - start.rss_mib
    if growth > args.max_rss_growth_mib:
        failures.append(
            f"RSS grew {growth:.1f} MiB after the warm-up ({start.rss_mib:.1f} -> "
            f"{end.rss_mib:.1f} MiB), more than {args.max_rss_growth_mib:g}"
        )
    fds_then, fds_now = start.fds - start.established, end.fds - end.established
    if fds_now > fds_then + args.fd_slack:
        failures.append(
            f"open fds other than upstream connections: {fds_then} after the warm-up, "
            f"{fds_now} at the end (more than {args.fd_slack} extra)"
        )
    if end.stuck:
        failures.append(f"{end.stuck} upstream connections not ESTABLISHED: {end.line()}")
    in_flight = {name: s["in_flight"] for name, s in stats.items() if s["in_flight"]}
    if in_flight:
        failures.append(f"requests still running at the upstreams with no client: {in_flight}")
    bound = args.clients + run.endpoints
    for name, states in end.upstream.items():
        if states["ESTABLISHED"] > bound:
            failures.append(
                f"{states['ESTABLISHED']} idle connections to {name}, more than one per client "
                f"and per probed endpoint ({bound}): upstream requests outlived their client's"
            )
    failed = sum((t.failed for t in tallies), Counter[str]())
    silent = {kind: failed[kind] for kind in SILENT if failed[kind]}
    if silent:
        failures.append(f"answers that went wrong with no error a client can see: {silent}")
    return failures


def route(workdir: Path, primary: int, fallback: int) -> tuple[Path, Path, int]:
    """The benchmark's route with shipped resilience defaults and its fallback on a second sim.

    Also how many endpoints each upstream has (two regions of one provider: each is probed).
    """
    config, secrets = services.write_route(workdir, primary)
    manifest = services.route_manifest(primary)
    del manifest["spec"]["resilience"]
    providers = manifest["spec"]["providers"]
    for endpoint in providers[1]["endpoints"]:
        endpoint["baseURL"] = f"http://127.0.0.1:{fallback}/v1"
    config.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return config, secrets, len(providers[0]["endpoints"])


# --- the command -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the run")
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="traffic before the first reading"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="quiet time before a reading")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument(
        "--client-timeout", type=float, default=3.0, help="a client gives up after this (s)"
    )
    parser.add_argument("--max-rss-growth-mib", type=float, default=10.0)
    parser.add_argument("--fd-slack", type=int, default=3, help="extra fds allowed at the end")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modelroute-soak-") as tmp:
        return soak_in(Path(tmp), args)


def soak_in(workdir: Path, args: argparse.Namespace) -> int:
    """Start the upstreams and the router, soak, stop them: the exit status."""
    cpus = sorted(os.sched_getaffinity(0))
    router_cpu, load_cpu = procstat.Placement(cpus[-1]), procstat.Placement(cpus[0])
    started: list[services.Service] = []
    try:
        try:
            for name in ("primary", "fallback"):
                (workdir / name).mkdir()
                started.append(services.start_sim(workdir / name, load_cpu))
            config, secrets, endpoints = route(workdir, started[0].port, started[1].port)
            router = services.start_router(workdir, router_cpu, config, secrets, "router")
            started.append(router)
        except RuntimeError as exc:
            print(f"soak: could not start: {exc}", file=sys.stderr)
            return 2
        sims = {started[0].port: "primary", started[1].port: "fallback"}
        run = Soak(args, router, sims, endpoints)
        print(
            f"router pid {run.pid} on port {router.port}, ready in {router.ready_s:.2f} s; "
            f"upstreams: {', '.join(f'{n} :{p}' for p, n in sims.items())}",
            flush=True,
        )
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            failures, summary = runner.run(soak(run))
        if run.alive():
            router.stop()  # SIGTERM: drains
            if router.proc is not None and router.proc.returncode != 0:
                failures.append(f"the router's drain on SIGTERM ended with {run.exit_status}")
    finally:
        for service in reversed(started):
            service.stop()
    assert router.log is not None
    if traces := tracebacks(router.log):
        failures.append(f"{len(traces)} tracebacks in the router's log; the first: {traces[0]}")
    if failures:
        tail = router.log.read_text(errors="replace").splitlines()[-20:]
        print("router log, last lines:", *(f"  {line}" for line in tail), sep="\n")
    for failure in failures:
        print(f"FAILED: {failure}", flush=True)
    print(f"soak: {'FAIL' if failures else 'PASS'} {summary}", flush=True)
    return 1 if failures else 0


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: the clients share the machine with the router."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
