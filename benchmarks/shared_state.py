"""Shared state: budgets, rate limits and the cache of three routers over one Redis (issue 12).

    python benchmarks/shared_state.py                       # the full run: about a minute
    python benchmarks/shared_state.py --quick               # the short run the tests use: ~30 s
    python benchmarks/shared_state.py --out /tmp/shared.md  # also write the report

A route runs as several routers. Issue 12 promises that they share one
budget, one set of client rate limits and one response cache through Redis,
that a budget is never overspent however many routers spend from it at once,
and that Redis going away costs requests nothing. Unit tests check the Lua
and the fallbacks one router at a time; this script runs the real thing on
loopback and prints what it measured, as Markdown with the command on top:
one ``redis-server`` (no persistence), two simulated upstreams
(``modelroute sim``, 20 ms to the answer) behind one provider, and three
``modelroute router`` processes with the same route, whose ``spec.redis``
points at that server.

* **Overspend.** ``--rounds`` times: a budget of its own (a new
  ``keyPrefix``, applied by hot reload, and the routers' leases taken on it),
  whose limit fits about a third of the requests, then all the requests at
  once (``max_tokens: 16``; 1,000, 200 with ``--quick``), spread over the
  three routers. The client counts answers, refusals (429
  ``budget_exceeded``) and the sum of ``x-modelroute-cost-usd``; Redis says
  what the budget spent once every reservation is settled, and the routers'
  ``/metrics`` how many Redis calls failed. Overshoot is spent minus limit.
* **Cache.** ``temperature: 0`` requests for distinct prompts, each sent ten
  times: first through router A, then nine more spread over A, B and C, 20 at
  a time. Hits come from the ``x-modelroute-cache`` header and, by tier
  (memory or Redis), from each router's ``/metrics``. Then router B restarts
  and is asked again, one at a time, for prompts it answered before its
  restart: its memory is empty, so a hit comes from Redis.
* **Outage.** 20 clients loop over the three routers for
  ``--outage-seconds`` with a budget, a rate limit and the cache on (every
  request a prompt of its own with ``temperature: 0``, so each one uses all
  three, and the load is the same in every phase); after a
  third of the time the redis-server is stopped (``SIGSTOP``: connections
  are accepted, nothing answers) for a third of the time, then continued.
  Then again with fresh routers, the server killed (``SIGKILL``) and a new
  one started on the same port (empty: no persistence) instead. Per phase,
  requests, failures (anything but a 200) and latency; when each router's
  ``modelroute_redis_up`` read 1 again; and what Redis says was spent next
  to what the answers cost.

Every process runs in a session of its own and is killed with the script
(``PR_SET_PDEATHSIG``), so nothing outlives a failure, a Ctrl-C or a
``kill -9``. Exit status 0 when the promises held (no overshoot, no failed
request, the restarted router's first request a hit, Redis back on every
router), 1 when one did not, 2 when something failed to start. The last
line sums up the figures. Needs Linux, ``redis-server`` and the project
installed; loopback only. The client is one aiohttp process on the same
machine as everything else, so its latencies include its own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

import aiohttp
import orjson
import services
import yaml

ROUTERS = ("A", "B", "C")
MODEL = "chat"
UPSTREAM_MODEL = "sim-model"
PRICE = (2.50, 10.00)  # USD per 1M input and output tokens (GPT-4o's list prices)
MAX_TOKENS = 16
SIM_LATENCY_MS = 20
BUDGET = "spend"
CONCURRENCY = 20  # clients of the cache and outage runs
RESTART_CHECKS = 10  # prompts asked of the restarted router
OUTAGE_BUDGET_USD = 1000.0  # never reached: the outage run must not be refused
OUTAGE_RPM, OUTAGE_TPM = 1_000_000, 100_000_000  # nor rate limited, even at a third of it
SETTLE_WITHIN = 15.0  # seconds for reservations, leases and pending charges to settle
UP_WITHIN = 30.0  # seconds after Redis is back for every router to say so
JSON = {"content-type": "application/json"}
Reply = bytes | int | None | list["Reply"]


class Failed(Exception):
    """Something did not start or did not answer: the run cannot measure."""


# --- processes ------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_us() -> None:
    """In the child, before exec: SIGKILL when the benchmark's thread that started it dies.

    Every child is started from the main thread (the event loop's), so this is when
    the benchmark dies, even by ``kill -9`` or a test's timeout."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Child:
    """A process listening on ``port`` in a session of its own, its output in ``log``."""

    name: str
    argv: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_us,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group (continued, if it was stopped), SIGKILL after
        ``timeout``."""
        if not self.alive():
            return
        for sig in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)
        try:
            assert self.proc is not None
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait()

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text)


class Fleet:
    """Every process of the run, so that each one is stopped whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def spawn(self, name: str, argv: list[str], port: int) -> Child:
        child = Child(name, argv, port, self.workdir / f"{name}.log")
        self.children.append(child)
        child.start()
        return child

    def close(self) -> None:
        for child in reversed(self.children):
            child.stop()


async def ready(child: Child, probe: Callable[[], Awaitable[bool]], within: float = 20) -> None:
    """Wait until ``probe`` says yes; Failed if the child exits or takes longer."""
    deadline = time.monotonic() + within
    while not await probe():
        if not child.alive():
            code = child.proc.returncode if child.proc is not None else None
            raise Failed(f"{child.name} exited ({code}):\n{child.tail()}")
        if time.monotonic() > deadline:
            raise Failed(f"{child.name} not ready after {within:g} s:\n{child.tail()}")
        await asyncio.sleep(0.02)


# --- Redis, as the benchmark reads it -----------------------------------------------------------


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    line = (await reader.readuntil(b"\r\n"))[:-2]
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise Failed(f"redis answered an error: {rest.decode(errors='replace')}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else (await reader.readexactly(size + 2))[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [await _read_reply(reader) for _ in range(count)]
    raise Failed(f"not a redis reply: {line[:80]!r}")


async def redis_call(port: int, *command: str | int, timeout: float = 5.0) -> Reply:
    """One command on a connection of its own (the benchmark reads a few keys, no more)."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            parts = [str(part).encode() for part in command]
            writer.write(
                b"*%d\r\n" % len(parts)
                + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)
            )
            return await _read_reply(reader)
        finally:
            writer.close()


async def redis_hash(port: int, key: str) -> dict[bytes, bytes]:
    reply = await redis_call(port, "HGETALL", key)
    items = reply if isinstance(reply, list) else []
    pairs = zip(items[::2], items[1::2], strict=True)
    return {k: v for k, v in pairs if isinstance(k, bytes) and isinstance(v, bytes)}


async def redis_pings(port: int) -> bool:
    try:
        return await redis_call(port, "PING", timeout=1.0) == b"PONG"
    except (OSError, TimeoutError, Failed, asyncio.IncompleteReadError):
        return False


def budget_key(prefix: str) -> str:
    """Where the budget's current window is counted (``SharedState.charge``): a hash of
    ``spent`` and ``reserved`` (nano-USD) and one ``r:<id>`` field per reservation."""
    day = int(time.time()) // 86400 * 86400
    return f"{prefix}b:{BUDGET}:{day}"


def leases(fields: dict[bytes, bytes]) -> int:
    """Routers' leases held in a budget's hash."""
    return sum(k.startswith(b"r:lease:") for k in fields)


def request_reservations(fields: dict[bytes, bytes]) -> dict[bytes, int]:
    """Requests' reservations held in a budget's hash: {id: nano-USD}."""
    return {
        k[2:]: int(v) for k, v in fields.items() if k.startswith(b"r:") and b"r:lease:" not in k
    }


@dataclass(frozen=True)
class BudgetReading:
    """A budget's window in Redis once its requests settled (or SETTLE_WITHIN passed)."""

    spent: float  # USD
    held: int = 0  # requests' reservations still held
    held_usd: float = 0.0
    expires_in: float = 0.0  # seconds until the last of them expires

    def held_text(self) -> str:
        if not self.held:
            return "none"
        return (
            f"{self.held} (${self.held_usd:.6f}, held until they expire, the last in "
            f"{self.expires_in:.0f} s)"
        )


async def read_budget(port: int, key: str, fields: dict[bytes, bytes]) -> BudgetReading:
    held = request_reservations(fields)
    spent = int(fields.get(b"spent", b"0")) / 1e9
    if not held:
        return BudgetReading(spent)
    reply = await redis_call(port, "ZRANGE", key + ":x", 0, -1, "WITHSCORES")
    clock = await redis_call(port, "TIME")
    items = reply if isinstance(reply, list) else []
    expiries = [
        int(score)
        for rid, score in zip(items[::2], items[1::2], strict=True)
        if isinstance(rid, bytes) and isinstance(score, bytes) and rid in held
    ]
    now_ms = 0
    if isinstance(clock, list) and len(clock) == 2:
        seconds, micros = clock
        if isinstance(seconds, bytes) and isinstance(micros, bytes):
            now_ms = int(seconds) * 1000 + int(micros) // 1000
    last = max(expiries, default=now_ms)
    return BudgetReading(spent, len(held), sum(held.values()) / 1e9, (last - now_ms) / 1000)


# --- what a client sees ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    router: int
    started: float  # time.perf_counter()
    seconds: float
    status: int  # 0: no HTTP answer
    code: str = ""  # a refusal's error code, or the exception of a request that got no answer
    cost: float = 0.0  # x-modelroute-cost-usd
    cache: str = ""  # x-modelroute-cache
    clamped: bool = False  # x-modelroute-max-tokens-clamped

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def kind(self) -> str:
        return f"{self.status} {self.code}".strip() if self.status else self.code


def chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        **extra,
    }


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest rank; 0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(results: Iterable[Result], q: float) -> float:
    return percentile((r.seconds for r in results), q) * 1000


def failures(results: Iterable[Result]) -> str:
    counts = Counter(r.kind for r in results if not r.ok)
    return ", ".join(f"{kind} x{n}" for kind, n in counts.most_common()) or "none"


def redis_errors(samples: dict[str, float]) -> Counter[str]:
    """``modelroute_redis_errors_total`` by kind."""
    found: Counter[str] = Counter()
    for series, value in samples.items():
        if series.startswith("modelroute_redis_errors_total{"):
            kind = series.partition('kind="')[2].partition('"')[0]
            found[kind] += int(value)
    return found


def errors_text(errors: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in errors.most_common()) or "none"


def metric_samples(text: str) -> dict[str, float]:
    """``/metrics`` as {series as written (name and labels): value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                samples[series] = float(value)
    return samples


# --- the setup ------------------------------------------------------------------------------


class Bench:
    """The redis-server, the simulators and the three routers, and a client for them."""

    def __init__(self, fleet: Fleet, http: aiohttp.ClientSession) -> None:
        self.fleet = fleet
        self.http = http
        self.redis: Child | None = None
        self.sims: list[Child] = []
        self.routers: list[Child] = []
        self.config = fleet.workdir / "route.yaml"
        self.sections = itertools.count(1)

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Failed("redis-server is not installed (apt-get install redis-server)")
        port = services.free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]  # fmt: skip
        self.redis = self.fleet.spawn("redis", [*argv, "--dir", str(self.fleet.workdir)], port)
        await ready(self.redis, lambda: redis_pings(port))
        for name in ("sim-1", "sim-2"):
            port = services.free_port()
            argv = [
                sys.executable, "-m", "modelroute.cli", "sim", "--port", str(port),
                "--log-level", "warning", "--latency-ms", str(SIM_LATENCY_MS),
            ]  # fmt: skip
            sim = self.fleet.spawn(name, argv, port)
            self.sims.append(sim)
            await ready(sim, self.probe(port, "/sim/stats"))

    @property
    def redis_port(self) -> int:
        assert self.redis is not None
        return self.redis.port

    def probe(self, port: int, path: str) -> Callable[[], Awaitable[bool]]:
        return lambda: self.answers(port, path)

    async def answers(self, port: int, path: str) -> bool:
        try:
            async with self.http.get(
                f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                await response.read()
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def get_json(self, port: int, path: str) -> Any:
        async with self.http.get(f"http://127.0.0.1:{port}{path}") as response:
            return orjson.loads(await response.read())

    def write_route(self, prefix: str, **spec: Any) -> None:
        """The route every router runs, written whole in one rename (routers reload it)."""
        doc = {
            "apiVersion": "modelroute.io/v1alpha1",
            "kind": "ModelRoute",
            "metadata": {"name": "bench", "namespace": "bench"},
            "spec": {
                "regions": [{"name": services.ROUTER_REGION}],
                "providers": [
                    {
                        "name": "sim",
                        "endpoints": [
                            {
                                "region": services.ROUTER_REGION,
                                "baseURL": f"http://127.0.0.1:{sim.port}/v1",
                            }
                            for sim in self.sims
                        ],
                        "models": {UPSTREAM_MODEL: {"input": PRICE[0], "output": PRICE[1]}},
                    }
                ],
                "models": [
                    {"name": MODEL, "targets": [{"provider": "sim", "model": UPSTREAM_MODEL}]}
                ],
                "redis": {"url": f"redis://127.0.0.1:{self.redis_port}", "keyPrefix": prefix},
                "server": {"shutdownDelay": "0s", "drainTimeout": "5s"},
                **spec,
            },
        }
        temporary = self.config.with_suffix(".tmp")
        temporary.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.replace(temporary, self.config)

    async def start_routers(self) -> None:
        """Three fresh routers on the route as written (the old ones stopped first)."""
        for router in self.routers:
            router.stop()
        section = next(self.sections)
        self.routers = []
        for name in ROUTERS:
            port = services.free_port()
            argv = [
                sys.executable, "-m", "modelroute.cli", "router", "--config", str(self.config),
                "--port", str(port), "--log-level", "warning",
            ]  # fmt: skip
            self.routers.append(self.fleet.spawn(f"router-{name}-{section}", argv, port))
        for router in self.routers:
            await self.router_ready(router)

    async def router_ready(self, router: Child) -> None:
        await ready(router, self.probe(router.port, "/readyz"))

    async def restart_router(self, index: int) -> None:
        """SIGTERM (it drains), then a new process on the same port."""
        router = self.routers[index]
        router.stop()
        router.start()
        await self.router_ready(router)

    def check_routers(self) -> None:
        for router in self.routers:
            if not router.alive():
                raise Failed(f"{router.name} died:\n{router.tail()}")

    async def post(self, router: int, body: dict[str, Any]) -> Result:
        url = f"http://127.0.0.1:{self.routers[router].port}/v1/chat/completions"
        started = time.perf_counter()
        try:
            async with self.http.post(url, data=orjson.dumps(body), headers=JSON) as response:
                data = await response.read()
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Result(router, started, time.perf_counter() - started, 0, type(exc).__name__)
        seconds = time.perf_counter() - started
        code = ""
        if status != 200:
            try:
                code = str(orjson.loads(data)["error"]["code"])
            except (orjson.JSONDecodeError, LookupError, TypeError):
                code = data[:60].decode(errors="replace")
        return Result(
            router,
            started,
            seconds,
            status,
            code,
            float(headers.get("x-modelroute-cost-usd", "0")),
            headers.get("x-modelroute-cache", ""),
            "x-modelroute-max-tokens-clamped" in headers,
        )

    async def metrics(self, router: int) -> dict[str, float]:
        async with self.http.get(f"http://127.0.0.1:{self.routers[router].port}/metrics") as r:
            return metric_samples(await r.text())

    async def redis_errors(self) -> Counter[str]:
        """The routers' Redis errors so far, by kind, summed over the three."""
        total: Counter[str] = Counter()
        for i in range(len(self.routers)):
            total += redis_errors(await self.metrics(i))
        return total

    async def sim_chats(self) -> int:
        """Chat completions the simulators answered so far."""
        total = 0
        for sim in self.sims:
            stats = await self.get_json(sim.port, "/sim/stats")
            total += int(stats["by_path"].get("/v1/chat/completions", 0))
        return total

    async def unit_cost(self, body: dict[str, Any]) -> float:
        """What one answer to ``body`` costs, asked of a simulator directly (no budget)."""
        url = f"http://127.0.0.1:{self.sims[0].port}/v1/chat/completions"
        async with self.http.post(url, data=orjson.dumps(body), headers=JSON) as response:
            usage = orjson.loads(await response.read())["usage"]
        prompt, completion = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        return (prompt * PRICE[0] + completion * PRICE[1]) / 1e6

    async def leases_taken(self, prefix: str) -> None:
        """Wait until each router holds its lease on the budget under ``prefix``: its shared
        state (after a start or a reload) is running on it.

        A reloaded router adopts its new table, and starts the new shared state, at its
        next request: each poll sends every router one for a model the route does not
        have (a 404, before any budget is counted)."""
        key = budget_key(prefix)
        deadline = time.monotonic() + SETTLE_WITHIN
        while leases(await redis_hash(self.redis_port, key)) < len(ROUTERS):
            self.check_routers()
            nudges = await asyncio.gather(
                *(self.post(i, {**chat("nudge"), "model": "no-such-model"}) for i in range(3))
            )
            if any(r.status != 404 for r in nudges):
                raise Failed(f"a request for a model the route lacks: {failures(nudges)}")
            if time.monotonic() > deadline:
                raise Failed(f"the routers took no lease on {key} within {SETTLE_WITHIN:g} s")
            await asyncio.sleep(0.05)

    async def count_each_other(self) -> float:
        """Wait until every router counts the three alive (``/status``), as long-running
        ones do: a router counts the others at its heartbeat, every 5 s, and while Redis
        is away each one allows its share of a rate limit, the limit ÷ that count.
        The seconds it took."""
        started = time.monotonic()
        while True:
            statuses = await asyncio.gather(
                *(self.get_json(router.port, "/status") for router in self.routers)
            )
            if all(s["sharedState"]["routers"] == len(ROUTERS) for s in statuses):
                return time.monotonic() - started
            if time.monotonic() - started > SETTLE_WITHIN:
                seen = [s["sharedState"]["routers"] for s in statuses]
                raise Failed(f"the routers count {seen} routers alive after {SETTLE_WITHIN:g} s")
            await asyncio.sleep(0.1)

    async def settled(self, prefix: str) -> BudgetReading:
        """The budget once no request holds a reservation (or SETTLE_WITHIN passed)."""
        key = budget_key(prefix)
        deadline = time.monotonic() + SETTLE_WITHIN
        while True:
            fields = await redis_hash(self.redis_port, key)
            if not request_reservations(fields) or time.monotonic() > deadline:
                return await read_budget(self.redis_port, key, fields)
            await asyncio.sleep(0.05)


async def pool(jobs: Iterable[Callable[[], Awaitable[Result]]], workers: int) -> list[Result]:
    """Run ``jobs`` in their order, ``workers`` at a time."""
    queue = iter(jobs)
    done: list[Result] = []

    async def worker() -> None:
        for job in queue:
            done.append(await job())

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


# --- 1. overspend ---------------------------------------------------------------------------


@dataclass
class Round:
    number: int
    limit: float
    results: list[Result]
    seconds: float
    budget: BudgetReading
    errors: Counter[str]  # the routers' Redis errors during the round

    @property
    def answered(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def refused(self) -> int:
        return sum(r.status == 429 and r.code == "budget_exceeded" for r in self.results)

    @property
    def other(self) -> list[Result]:
        return [
            r for r in self.results if not r.ok and (r.status, r.code) != (429, "budget_exceeded")
        ]

    @property
    def client_cost(self) -> float:
        return sum(r.cost for r in self.results if r.ok)

    @property
    def spent(self) -> float:
        return self.budget.spent

    @property
    def overshoot(self) -> float:
        return max(0.0, self.spent - self.limit)


async def overspend(bench: Bench, rounds: int, requests: int) -> tuple[list[Round], float]:
    """The rounds, and the cost of one answer the limit was sized from."""
    unit = await bench.unit_cost(chat("Round 0 request 0000: say hello"))
    limit = round(unit * requests / 3, 6)

    def budget(limit_usd: float) -> dict[str, Any]:
        return {"budgets": [{"name": BUDGET, "limitUSD": limit_usd, "window": "day"}]}

    bench.write_route("bench:warmup:", **budget(OUTAGE_BUDGET_USD))
    await bench.start_routers()
    await bench.leases_taken("bench:warmup:")
    warm = await asyncio.gather(*(bench.post(i % 3, chat(f"warm-up {i}")) for i in range(60)))
    if not all(r.ok for r in warm):
        raise Failed(f"warm-up requests failed: {failures(warm)}")
    done = []
    for number in range(1, rounds + 1):
        prefix = f"bench:spend{number}:"
        bench.write_route(prefix, **budget(limit))  # each router reloads it within ~1 s
        await bench.leases_taken(prefix)
        errors = await bench.redis_errors()
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                bench.post(i % 3, chat(f"Round {number} request {i:04d}: say hello"))
                for i in range(requests)
            )
        )
        seconds = time.perf_counter() - started
        reading = await bench.settled(prefix)
        errors = await bench.redis_errors() - errors
        one = Round(number, limit, list(results), seconds, reading, errors)
        done.append(one)
        progress(
            f"overspend round {number}/{rounds}: {one.answered} answered, {one.refused} "
            f"refused, spent ${one.spent:.6f} of ${limit:.6f}"
        )
    return done, unit


def overspend_report(rounds: list[Round], unit: float, requests: int) -> list[str]:
    limit = rounds[0].limit
    lines = [
        f"## 1. Overspend: {requests:,} concurrent requests against a budget that fits about a third",
        "",
        f"Each round: a new budget (`limitUSD: {limit:g}`, `window: day`: "
        f"{limit / unit:.0f} answers of ${unit:.6f}, the cost of one answer as the simulator "
        f"bills it) by hot reload of a new `keyPrefix`, the three routers' leases taken on it "
        "(`leasePercent` 2, the default; a reloaded router starts its new shared state at "
        "its next request, so each was first sent one for a model the route lacks), "
        f"then {requests:,} requests (`max_tokens: {MAX_TOKENS}`) at once, one in three to each "
        "router. *Spent* is the budget's `spent` in Redis once every reservation is settled; "
        "*Σ cost* the answers' `x-modelroute-cost-usd`; *clamped* answers had their "
        "`max_tokens` lowered to what was left. Latency over all requests, answered or refused.",
        "",
        "| round | answered | clamped | refused (429) | other | Σ cost (USD) | spent (USD) "
        "| limit (USD) | overshoot (USD) | req/s | p50 ms | p99 ms | routers' Redis errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for one in rounds:
        lines.append(
            f"| {one.number} | {one.answered} | {sum(r.clamped for r in one.results)} "
            f"| {one.refused} | {len(one.other)} | {one.client_cost:.6f} | {one.spent:.6f} "
            f"| {one.limit:.6f} | {one.overshoot:.6f} | {len(one.results) / one.seconds:,.0f} "
            f"| {ms(one.results, 0.5):.0f} | {ms(one.results, 0.99):.0f} "
            f"| {errors_text(one.errors)} |"
        )
    worst = max(rounds, key=lambda one: one.overshoot)
    lines += ["", f"**Largest overshoot: ${worst.overshoot:.6f}** (round {worst.number})."]
    for one in rounds:
        if one.other:
            lines.append(f"Round {one.number}, other answers: {failures(one.other)}.")
        if one.budget.held:
            lines.append(
                f"Round {one.number}: requests' reservations still held {SETTLE_WITHIN:g} s "
                f"after the last answer: {one.budget.held_text()}."
            )
        if abs(one.client_cost - one.spent) > 1e-8 * max(1, one.answered):
            lines.append(
                f"Round {one.number}: Redis's spent differs from the answers' cost by "
                f"${one.spent - one.client_cost:+.6f}."
            )
    return lines


# --- 2. the cache ---------------------------------------------------------------------------


@dataclass
class CacheRun:
    prompts: int
    results: list[Result]
    tiers: list[dict[str, float]]  # per router: hits by tier, lookups
    upstream: int  # chat completions the simulators answered
    restarted: list[Result] = field(default_factory=list)
    restarted_tiers: dict[str, float] = field(default_factory=dict)

    @property
    def hits(self) -> list[Result]:
        return [r for r in self.results if r.cache == "hit"]

    @property
    def misses(self) -> list[Result]:
        return [r for r in self.results if r.cache != "hit"]

    @property
    def hit_ratio(self) -> float:
        return len(self.hits) / len(self.results) if self.results else 0.0


def tier_counts(samples: dict[str, float]) -> dict[str, float]:
    return {
        "memory": samples.get('modelroute_cache_tier_hits_total{tier="memory"}', 0.0),
        "redis": samples.get('modelroute_cache_tier_hits_total{tier="redis"}', 0.0),
        "lookups": samples.get('modelroute_cache_lookups_total{result="hit"}', 0.0)
        + samples.get('modelroute_cache_lookups_total{result="miss"}', 0.0),
    }


async def cache_run(bench: Bench, prompts: int, checks: int) -> CacheRun:
    bench.write_route("bench:cache:", cache={"enabled": True})
    await bench.start_routers()
    before = await bench.sim_chats()

    def send(router: int, prompt: int) -> Callable[[], Awaitable[Result]]:
        body = chat(f"Cached question {prompt}: what is {prompt} + {prompt}?", temperature=0)
        return lambda: bench.post(router, body)

    # Each prompt's first request through A, then its nine others over B, C, A, B, ...
    firsts = [send(0, k) for k in range(prompts)]
    others = [send(j % 3, k) for k in range(prompts) for j in range(1, 10)]
    results = await pool(firsts, CONCURRENCY) + await pool(others, CONCURRENCY)
    upstream = await bench.sim_chats() - before
    tiers = [tier_counts(await bench.metrics(i)) for i in range(len(ROUTERS))]
    run = CacheRun(prompts, results, tiers, upstream)
    progress(f"cache: hit ratio {run.hit_ratio:.3f}; restarting router B")
    await bench.restart_router(1)
    for k in range(checks):  # one at a time: each one's answer comes from Redis or upstream
        run.restarted.append(await send(1, k)())
    run.restarted_tiers = tier_counts(await bench.metrics(1))
    return run


def cache_report(run: CacheRun) -> list[str]:
    total = len(run.results)
    repeats = total - run.prompts
    repeat_hits = sum(r.cache == "hit" for r in run.results[run.prompts :])
    lines = [
        f"## 2. Cache: {run.prompts} prompts, 10 times each, over three routers",
        "",
        f"`cache: {{enabled: true}}`, requests with `temperature: 0`, {CONCURRENCY} at a time: "
        f"each prompt first through router A ({run.prompts} requests), then its nine "
        f"repeats spread over B, C, A, B, … ({repeats} requests, prompt after prompt).",
        "",
        f"Hit ratio **{run.hit_ratio:.3f}** ({len(run.hits)} of {total}; the first request of "
        f"each prompt cannot hit, so {repeats / total:.3f} is the most there is); repeats "
        f"{repeat_hits} of {repeats} hits. The simulators answered {run.upstream} chat "
        f"completions: {'one per miss' if run.upstream == len(run.misses) else 'misses: ' + str(len(run.misses))}.",
        "",
        "| router | requests | hits | from memory | from Redis |",
        "|---|---:|---:|---:|---:|",
    ]
    for i, name in enumerate(ROUTERS):
        mine = [r for r in run.results if r.router == i]
        lines.append(
            f"| {name} | {len(mine)} | {sum(r.cache == 'hit' for r in mine)} "
            f"| {run.tiers[i]['memory']:.0f} | {run.tiers[i]['redis']:.0f} |"
        )
    lines += [
        "",
        "| client-side latency | requests | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| hit | {len(run.hits)} | {ms(run.hits, 0.5):.1f} | {ms(run.hits, 0.99):.1f} |",
        f"| miss (the upstream answers in {SIM_LATENCY_MS} ms) | {len(run.misses)} "
        f"| {ms(run.misses, 0.5):.1f} | {ms(run.misses, 0.99):.1f} |",
    ]
    if not all(r.ok for r in run.results):
        lines.append(f"\nFailed requests: {failures(run.results)}.")
    seen = " ".join(r.cache or r.kind for r in run.restarted)
    t = run.restarted_tiers
    lines += [
        "",
        f"**Router B restarted** (SIGTERM, a new process on the same port, its memory empty), "
        f"then asked for prompts 0-{len(run.restarted) - 1} one after another: {seen}. "
        f"Its /metrics: {t['redis']:.0f} hits from Redis, {t['memory']:.0f} from memory.",
    ]
    return lines


# --- 3. the outage --------------------------------------------------------------------------

PHASES = ("before", "during", "after")


@dataclass
class Outage:
    how: Literal["stop", "kill"]
    seconds: float
    results: list[Result]
    t0: float
    fault_at: float  # seconds after t0
    back_at: float  # Redis answering again (continued, or the new server answering PING)
    readings: list[list[tuple[float, float]]]  # per router: (seconds after t0, redis_up)
    cost_by_phase: dict[str, float] = field(default_factory=dict)
    budget: BudgetReading = BudgetReading(0.0)
    pending: list[int] = field(default_factory=list)  # per router, after the wait
    errors: Counter[str] = field(default_factory=Counter)  # the routers' Redis errors

    def phase(self, result: Result) -> str:
        at = result.started - self.t0
        return "before" if at < self.fault_at else "during" if at < self.back_at else "after"

    def in_phase(self, name: str) -> list[Result]:
        return [r for r in self.results if self.phase(r) == name]

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

    def up_before(self, router: int) -> float | None:
        values = [v for t, v in self.readings[router] if t < self.fault_at]
        return values[-1] if values else None

    def down_after(self, router: int) -> float | None:
        """Seconds from the fault to the first reading of 0 (None: never read 0)."""
        return next(
            (t - self.fault_at for t, v in self.readings[router] if t >= self.fault_at and v == 0),
            None,
        )

    def down_text(self, router: int) -> str:
        if self.up_before(router) == 0:
            return "(0 already)"
        down = self.down_after(router)
        return "never" if down is None else f"+{down:.2f} s"

    def up_after(self, router: int) -> float | None:
        """Seconds from Redis being back to the first reading of 1 (None: never)."""
        return next(
            (t - self.back_at for t, v in self.readings[router] if t >= self.back_at and v == 1),
            None,
        )

    @property
    def all_up_after(self) -> float | None:
        times = [self.up_after(i) for i in range(len(self.readings))]
        return None if None in times else max(t for t in times if t is not None)


async def watch_redis_up(
    bench: Bench, t0: float, back: asyncio.Event, readings: list[list[tuple[float, float]]]
) -> None:
    """Read every router's modelroute_redis_up every 100 ms, until every one reads 1 after
    ``back`` is set (or UP_WITHIN passed)."""
    back_at: float | None = None
    while True:
        values = await asyncio.gather(*(bench.metrics(i) for i in range(len(ROUTERS))))
        now = time.perf_counter() - t0
        for mine, samples in zip(readings, values, strict=True):
            mine.append((now, samples.get("modelroute_redis_up", -1.0)))
        if back.is_set():
            back_at = now if back_at is None else back_at
            after = [[v for t, v in mine if t >= back_at] for mine in readings]
            if all(1.0 in values for values in after) or now - back_at > UP_WITHIN:
                return
        await asyncio.sleep(0.1)


async def outage(bench: Bench, how: Literal["stop", "kill"], seconds: float) -> Outage:
    assert bench.redis is not None
    redis = bench.redis
    prefix = f"bench:outage-{how}:"
    bench.write_route(
        prefix,
        budgets=[{"name": BUDGET, "limitUSD": OUTAGE_BUDGET_USD, "window": "day"}],
        rateLimits=[
            {"name": "per-client", "requestsPerMinute": OUTAGE_RPM, "tokensPerMinute": OUTAGE_TPM}
        ],
        cache={"enabled": True},
    )
    await bench.start_routers()
    await bench.leases_taken(prefix)
    await bench.count_each_other()
    errors = await bench.redis_errors()
    results: list[Result] = []
    readings: list[list[tuple[float, float]]] = [[] for _ in ROUTERS]
    back = asyncio.Event()
    t0 = time.perf_counter()
    end = t0 + seconds
    times: dict[str, float] = {}

    async def client(n: int) -> None:
        for i in itertools.count():
            if time.perf_counter() >= end:
                return
            body = chat(f"Outage question {n}-{i}", temperature=0)
            results.append(await bench.post((n + i) % 3, body))

    async def fault() -> None:
        await asyncio.sleep(seconds / 3)
        times["fault"] = time.perf_counter() - t0
        if how == "stop":
            redis.signal(signal.SIGSTOP)
        else:
            redis.kill()
        await asyncio.sleep(t0 + 2 * seconds / 3 - time.perf_counter())
        if how == "stop":
            redis.signal(signal.SIGCONT)
        else:
            redis.start()  # the same argv: the same port
            await ready(redis, lambda: redis_pings(redis.port))
        times["back"] = time.perf_counter() - t0
        back.set()

    watcher = asyncio.create_task(watch_redis_up(bench, t0, back, readings))
    try:
        await asyncio.gather(fault(), *(client(n) for n in range(CONCURRENCY)))
        await watcher
    finally:
        watcher.cancel()
        if how == "stop":
            redis.signal(signal.SIGCONT)
    run = Outage(how, seconds, results, t0, times["fault"], times["back"], readings)
    for name in PHASES:
        run.cost_by_phase[name] = sum(r.cost for r in run.in_phase(name) if r.ok)
    # What the routers spent while Redis was away is charged to it once it is back.
    deadline = time.monotonic() + SETTLE_WITHIN
    while True:
        statuses = await asyncio.gather(
            *(bench.get_json(router.port, "/status") for router in bench.routers)
        )
        run.pending = [int(s["sharedState"]["pendingCharges"]) for s in statuses]
        if not any(run.pending) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    run.budget = await bench.settled(prefix)
    run.errors = await bench.redis_errors() - errors
    progress(f"outage ({how}): {len(results)} requests, {run.failed} failed")
    return run


def outage_report(run: Outage, number: str) -> list[str]:
    third = run.seconds / 3
    if run.how == "stop":
        title = f"### {number} `kill -STOP` for {third:.1f} s, then `kill -CONT`"
    else:
        title = (
            f"### {number} `kill -KILL`, a new redis-server on the same port {third:.1f} s later "
            "(empty: no persistence)"
        )
    lines = [
        title,
        "",
        "| phase | window (s) | requests | failed | req/s | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    bounds = {
        "before": (0.0, run.fault_at),
        "during": (run.fault_at, run.back_at),
        "after": (run.back_at, run.seconds),
    }
    for name in PHASES:
        mine = run.in_phase(name)
        start, stop = bounds[name]
        rate = len(mine) / (stop - start) if stop > start else 0.0
        lines.append(
            f"| {name} | {start:.1f}-{stop:.1f} | {len(mine)} | {sum(not r.ok for r in mine)} "
            f"| {rate:,.0f} | {ms(mine, 0.5):.1f} | {ms(mine, 0.99):.1f} | {ms(mine, 1.0):.1f} |"
        )
    if run.failed:
        lines.append(f"\nFailed: {failures(run.results)}.")
    lines += ["", "| router | redis_up before | read 0 after the fault | read 1 after Redis was back |", "|---|---:|---:|---:|"]  # fmt: skip
    for i, name in enumerate(ROUTERS):
        before, up = run.up_before(i), run.up_after(i)
        lines.append(
            f"| {name} | {'—' if before is None else f'{before:.0f}'} | {run.down_text(i)} "
            f"| {'never' if up is None else f'+{up:.2f} s'} |"
        )
    every = run.all_up_after
    lines += [
        "",
        "`modelroute_redis_up` was 1 on every router "
        + (
            f"**{every:.2f} s** after Redis answered again"
            if every is not None
            else f"**never** within {UP_WITHIN:g} s of Redis answering again"
        )
        + f" (each router's /metrics read every 100 ms). The routers' Redis errors "
        f"(`modelroute_redis_errors_total`): {errors_text(run.errors)}.",
    ]
    stale = [ROUTERS[i] for i in range(len(ROUTERS)) if run.up_before(i) == 0]
    if stale:
        lines.append(
            f"Note: routers {', '.join(stale)} read `modelroute_redis_up 0` before the fault, "
            "while Redis answered them."
        )
    cost = run.cost_by_phase
    lost = " (the new server knows nothing of what was spent before the kill)"
    lines += [
        "",
        f"Budget: the answers cost ${sum(cost.values()):.6f} (before ${cost['before']:.6f}, "
        f"during ${cost['during']:.6f}, after ${cost['after']:.6f}); Redis says spent "
        f"${run.budget.spent:.6f}{lost if run.how == 'kill' else ''}. Charges still pending "
        f"on the routers: {sum(run.pending)}. Requests' reservations still held in Redis "
        f"once every answer was settled: {run.budget.held_text()}.",
    ]
    return lines


# --- the run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    rounds: int
    requests: int
    prompts: int
    checks: int
    outage_seconds: float


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, fleet: Fleet, command: str) -> tuple[list[str], str, bool]:
    """The report's lines, the summary's figures and whether every promise held."""
    sizes = Sizes(
        rounds=args.rounds,
        requests=200 if args.quick else 1000,
        prompts=20 if args.quick else 100,
        checks=5 if args.quick else RESTART_CHECKS,
        outage_seconds=args.outage_seconds,
    )
    connector = aiohttp.TCPConnector(limit=0)  # every request its own connection if need be
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        bench = Bench(fleet, http)
        await bench.start()
        rounds, unit = await overspend(bench, sizes.rounds, sizes.requests)
        cached = await cache_run(bench, sizes.prompts, sizes.checks)
        stopped = await outage(bench, "stop", sizes.outage_seconds)
        killed = await outage(bench, "kill", sizes.outage_seconds)
        bench.check_routers()
    version = (await asyncio.to_thread(redis_version)).split()
    lines = [
        "# Shared state over Redis: budgets, rate limits, cache (issue 12)",
        "",
        f"`{command}`",
        "",
        f"On loopback: one redis-server ({' '.join(version[2:3]) or '?'}, no persistence), two "
        f"simulated upstreams (`modelroute sim --latency-ms {SIM_LATENCY_MS}`, {MAX_TOKENS}-token "
        f"answers) behind one provider priced at ${PRICE[0]:.2f}/${PRICE[1]:.2f} per 1M tokens, "
        "three `modelroute router` processes (A, B, C) on one route whose `spec.redis` is that "
        "server (shipped defaults: `timeout: 50ms`, `leasePercent: 2`), and one aiohttp client "
        f"process (no connection limit), all on {os.cpu_count()} CPUs, unpinned.",
        "",
        *overspend_report(rounds, unit, sizes.requests),
        "",
        *cache_report(cached),
        "",
        f"## 3. Redis outage under load: {CONCURRENCY} clients for {sizes.outage_seconds:g} s",
        "",
        "Fresh routers for each (the load starts once each one counts the three alive in "
        "`/status`: its share of a rate limit while Redis is away), a budget "
        f"(${OUTAGE_BUDGET_USD:g} a day), a per-client rate "
        f"limit ({OUTAGE_RPM:,} requests and {OUTAGE_TPM:,} tokens a minute) and the cache on; "
        "each client sends requests back to back, to A, B and C in turn, each with a prompt "
        "of its own and `temperature: 0`: every one takes from the rate limit, reserves "
        "from the budget, misses the cache (memory, then Redis), goes upstream, is stored "
        "and settles. A request's phase is when it was sent. Failed: anything but a 200.",
        "",
        *outage_report(stopped, "3a."),
        "",
        *outage_report(killed, "3b."),
    ]
    overshoot = max(one.overshoot for one in rounds)
    first = cached.restarted[0].cache if cached.restarted else ""
    back = {run.how: run.all_up_after for run in (stopped, killed)}
    held = (
        overshoot == 0
        and all(not one.other for one in rounds)
        and all(r.ok for r in cached.results)
        and first == "hit"
        and stopped.failed == killed.failed == 0
        and None not in back.values()
    )
    phases = " ".join(
        f"{run.how}_failed_{name}={sum(not r.ok for r in run.in_phase(name))}"
        for run in (stopped, killed)
        for name in PHASES
    )
    summary = (
        f"rounds={len(rounds)} requests={sizes.requests} "
        f"answered={','.join(str(one.answered) for one in rounds)} "
        f"overshoot_usd={overshoot:.6f} cache_hit_ratio={cached.hit_ratio:.4f} "
        f"restart_first={first or 'none'} {phases} "
        + " ".join(
            f"{how}_up_after_s={'never' if t is None else f'{t:.2f}'}" for how, t in back.items()
        )
    )
    return lines, summary, held


def redis_version() -> str:
    """``Redis server v=7.0.15 sha=...``"""
    found = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    )
    return found.stdout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, help="overspend rounds (default 5; 1 with --quick)")
    parser.add_argument(
        "--outage-seconds",
        type=float,
        help="each outage run, a third of it without Redis (default 10; 3 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the short run the tests use: 200 requests a round, 20 prompts, 3 s outages",
    )
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.outage_seconds is None:
        args.outage_seconds = 3.0 if args.quick else 10.0
    if args.rounds < 1 or args.outage_seconds < 1.5:
        parser.error("--rounds must be at least 1 and --outage-seconds at least 1.5")
    return args


def _interrupted(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # SIGTERM too: unwind, so that every child is stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(
        ["python", "benchmarks/shared_state.py", *(sys.argv[1:] if argv is None else argv)]
    )
    signal.signal(signal.SIGTERM, _interrupted)
    with tempfile.TemporaryDirectory(prefix="modelroute-shared-state-") as tmp:
        fleet = Fleet(Path(tmp))
        try:
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                lines, summary, held = runner.run(run(args, fleet, command))
        except Failed as exc:
            print(f"shared_state: could not run: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("shared_state: interrupted", file=sys.stderr)
            return 130
        finally:
            fleet.close()
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.write_text(report)
    print(f"shared_state: {'PASS' if held else 'FAIL'} {summary}", flush=True)
    return 0 if held else 1


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: one client process drives three routers."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
