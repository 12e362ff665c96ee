"""modelroute next to a bare Python proxy and nginx: CPU per request, added latency, memory.

    python benchmarks/run.py                      # full run, a few minutes
    python benchmarks/run.py --quick              # smoke run (CI): prints the tables, asserts nothing
    python benchmarks/run.py --out docs/performance.md --json /tmp/bench.json --profile /tmp/mr.txt

Four targets take the same load, one after the other, in every scenario:
``direct`` (the load generator against the simulated upstream: the floor),
``passthrough`` (benchmarks/passthrough.py, ~50 lines of aiohttp: a Python
proxy with no features), ``nginx`` (one worker, upstream keep-alive,
``proxy_buffering off``; skipped with a note when not installed) and
``modelroute`` with a realistic route (two regions, a two-target fallback
chain, upstream API keys, active health checks, metrics and access logging
as shipped).

Method (issue 7): the proxy under test runs alone on one CPU, the load
generator and the simulated upstream on the other. Each proxy is billed the
CPU time the kernel charged its threads during the measurement window
(``/proc/<pid>/task/*/schedstat``), which holds steady when the machine is
noisy; latency is reported as percentiles and as what the proxy adds over
direct; the hypervisor's steal and the time the proxy waited for its core
are shown so a reader can judge the noise. Only loopback traffic.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import procstat
import report
import services

HERE = Path(__file__).resolve().parent
LONG_STREAM_DELAY_MS = 100.0
# The simulator (aiohttp) refuses bodies of 1 MiB and more, so the image part stays just under.
IMAGE_B64_BYTES = 1024 * 1024 - 8 * 1024


@dataclass(frozen=True)
class Settings:
    """How long and how hard: full mode for the published table, quick for CI."""

    quick: bool
    duration: float
    warmup: float
    long_streams: int
    ramp: float
    rate: float
    leak_warmup: int
    leak_requests: int
    start_trials: int
    settle: float
    proxy_cpu: int
    load_cpu: int
    nice: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = args.quick
        proxy_cpu, load_cpu = usable_cpus(args.proxy_cpu, args.load_cpu)
        return cls(
            quick=quick,
            duration=args.duration or (0.3 if quick else 5.0),
            warmup=0.1 if quick else 1.5,
            long_streams=args.streams or (100 if quick else 2000),
            ramp=0.3 if quick else 3.0,
            rate=args.rate or (200.0 if quick else 1000.0),
            leak_warmup=300 if quick else 20_000,
            leak_requests=args.leak_requests or (2_000 if quick else 200_000),
            start_trials=1 if quick else 5,
            settle=0.05 if quick else 0.5,
            proxy_cpu=proxy_cpu,
            load_cpu=load_cpu,
            nice=args.nice,
        )

    @property
    def proxy_place(self) -> procstat.Placement:
        return procstat.Placement(self.proxy_cpu, self.nice)

    @property
    def load_place(self) -> procstat.Placement:
        return procstat.Placement(self.load_cpu, self.nice)


def usable_cpus(proxy: int, load: int) -> tuple[int, int]:
    """The CPUs asked for, or what this process may use (a one-CPU CI runner shares one)."""
    allowed = sorted(os.sched_getaffinity(0))
    if proxy in allowed and load in allowed and proxy != load:
        return proxy, load
    print(
        f"note: CPUs {proxy} and {load} are not both available (allowed: {allowed}); "
        f"using {allowed[-1]} for the proxy and {allowed[0]} for the load",
        file=sys.stderr,
    )
    return allowed[-1], allowed[0]


@dataclass(frozen=True)
class Scenario:
    """One row of the benchmark: a load shape and how the simulated upstream answers."""

    key: str
    title: str
    kind: str  # requests | streams | long
    job: dict[str, Any]
    sim: dict[str, Any]
    params: str


def scenarios(s: Settings) -> list[Scenario]:
    """The scenarios in the order they run.

    The long streams run before the large bodies: a proxy that has just held
    1 MiB buffers may hand them back to the OS while the streams are open,
    which would make the memory per stream look smaller than it is.
    """
    plain = {"tokens": 16, "token_delay_ms": 0.0}
    paced = {"tokens": 16, "token_delay_ms": 1.0}
    hold = s.ramp + s.warmup + s.duration + 2.0
    long_tokens = int(hold * 1000 / LONG_STREAM_DELAY_MS) + 1
    image_mib = IMAGE_B64_BYTES / 2**20
    return [
        Scenario("ns-c1", "Non-streaming, concurrency 1", "requests",
                 {"mode": "closed", "concurrency": 1}, plain,
                 "Closed loop, 1 keep-alive connection; an answer of 16 tokens."),
        Scenario("ns-c32", "Non-streaming, concurrency 32", "requests",
                 {"mode": "closed", "concurrency": 32}, plain,
                 "Closed loop, 32 keep-alive connections."),
        Scenario("stream-c1", "Streaming 16 chunks, concurrency 1", "streams",
                 {"mode": "closed", "concurrency": 1, "stream": True}, paced,
                 "SSE: role chunk, 16 token chunks 1 ms apart, stop, [DONE]; "
                 "latency = the whole stream, TTFT = to the first token."),
        Scenario("stream-c8", "Streaming 16 chunks, concurrency 8", "streams",
                 {"mode": "closed", "concurrency": 8, "stream": True}, paced,
                 "As above, 8 streams at a time."),
        Scenario("open", f"Open loop, {s.rate:g} req/s fixed rate", "requests",
                 {"mode": "open", "rate": s.rate, "concurrency": 16}, plain,
                 "Non-streaming requests sent when due whatever the answers do; "
                 "latency counted from when each was due."),
        Scenario("long", f"{s.long_streams:,} concurrent long streams", "long",
                 {"mode": "streams", "concurrency": s.long_streams, "stream": True,
                  "ramp": s.ramp, "gap_floor_ms": LONG_STREAM_DELAY_MS / 2,
                  "settle": max(s.settle, 0.5 if s.quick else 3.0)},
                 {"tokens": long_tokens, "token_delay_ms": LONG_STREAM_DELAY_MS},
                 f"A chunk every {LONG_STREAM_DELAY_MS:g} ms per stream; streams opened over "
                 f"{s.ramp:g} s and held through the window. Gap = time between chunk "
                 "arrivals at the client; RSS/stream = the proxy's RSS growth with the "
                 "streams open ÷ streams."),
        Scenario("large", f"Non-streaming, {image_mib:.2f} MiB base64 image part, concurrency 8",
                 "requests",
                 {"mode": "closed", "concurrency": 8, "image_b64_bytes": IMAGE_B64_BYTES}, plain,
                 "A data: URL image part in the user message (the simulator refuses "
                 "bodies of 1 MiB and more)."),
    ]  # fmt: skip


@dataclass
class Bench:
    """The running services and everything measured so far."""

    settings: Settings
    workdir: Path
    sim: services.Service | None = None
    proxies: list[services.Service] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    router_facts: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def router(self) -> services.Service:
        return next(p for p in self.proxies if p.name == "modelroute")

    def start(self) -> None:
        s = self.settings
        self.sim = services.start_sim(self.workdir, s.load_place)
        self.proxies.append(services.start_passthrough(self.workdir, s.proxy_place, self.sim.port))
        nginx = services.start_nginx(self.workdir, s.proxy_place, self.sim.port)
        if nginx is None:
            self.notes.append(
                "nginx is not installed: its rows are skipped (apt-get install nginx-light)."
            )
        else:
            self.proxies.append(nginx)
        config, secrets = services.write_route(self.workdir, self.sim.port)
        self.proxies.append(
            services.start_router(self.workdir, s.proxy_place, config, secrets, "modelroute")
        )
        time.sleep(0.3 if s.quick else 1.0)  # idle: probes started, nothing else
        self.router_facts["idle_rss_mib"] = procstat.rss_kib(self.router.pids) / 1024
        self.router_facts["start_to_ready_s"] = self._start_to_ready(config, secrets)

    def _start_to_ready(self, config: Path, secrets: Path) -> float:
        """Median time from spawning ``modelroute router`` to ``/readyz`` answering 200."""
        times = [self.router.ready_s]
        for i in range(self.settings.start_trials - 1):
            extra = services.start_router(
                self.workdir, self.settings.proxy_place, config, secrets, f"modelroute-start{i}"
            )
            times.append(extra.ready_s)
            extra.stop()
        self.router_facts["start_to_ready_all_s"] = times
        return statistics.median(times)

    def targets(self) -> list[dict[str, Any]]:
        assert self.sim is not None
        sim = self.sim.pids
        found = [{"name": "direct", "port": self.sim.port, "pids": [], "load_pids": sim}]
        found += [
            {"name": p.name, "port": p.port, "pids": p.pids, "load_pids": sim} for p in self.proxies
        ]
        return found

    def router_target(self) -> list[dict[str, Any]]:
        return [t for t in self.targets() if t["name"] == "modelroute"]

    def loadgen(self, job: dict[str, Any]) -> list[report.Result]:
        """Run one load generator process on the load CPU; its JSON results."""
        s = self.settings
        job = {"warmup": s.warmup, "duration": s.duration, "settle": s.settle,
               "model": services.ROUTE_MODEL, **job}  # fmt: skip
        done = subprocess.run(
            [sys.executable, str(HERE / "loadgen.py")],
            input=json.dumps(job).encode(),
            capture_output=True,
            preexec_fn=s.load_place,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{done.stderr.decode()[-4000:]}")
        results: list[report.Result] = json.loads(done.stdout)
        return results

    def set_sim(self, behaviour: dict[str, Any]) -> None:
        assert self.sim is not None
        services.sim_admin(self.sim.port, "/sim/behaviour", behaviour)

    def run_scenario(self, scenario: Scenario) -> report.ScenarioReport:
        self.set_sim(scenario.sim)
        results = self.loadgen({"targets": self.targets(), **scenario.job})
        self.raw[scenario.key] = results
        return report.ScenarioReport(
            scenario.key, scenario.title, scenario.kind, results, params=scenario.params
        )

    def leak_check(self) -> None:
        """RSS after a warm-up, then after many more requests (every 4th one streaming)."""
        s = self.settings
        self.set_sim({"tokens": 16, "token_delay_ms": 0.0})
        router = self.router
        job = {"targets": self.router_target(), "mode": "closed", "concurrency": 32, "stream_every": 4,
               "warmup": 0.2}  # fmt: skip
        self.loadgen({**job, "requests": s.leak_warmup})
        warm = procstat.rss_kib(router.pids)
        results = self.loadgen({**job, "requests": s.leak_requests})
        after = procstat.rss_kib(router.pids)
        self.raw["leak"] = results
        self.router_facts.update(
            leak_requests=results[0]["ok"] + results[0]["errors"],
            leak_errors=results[0]["errors"],
            leak_rss_warm_mib=warm / 1024,
            leak_rss_after_mib=after / 1024,
            leak_growth_mib=(after - warm) / 1024,
        )

    def evidence(self) -> None:
        """Proof the features were on: health probes the sim saw, the router's metrics."""
        assert self.sim is not None
        stats = services.sim_admin(self.sim.port, "/sim/stats")
        self.router_facts["sim_probe_requests"] = stats["by_path"].get("/v1/models", 0)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.router.port}/metrics", timeout=10
        ) as response:
            text = response.read().decode()
        series = [line for line in text.splitlines() if line.startswith("modelroute_")]
        self.router_facts["metric_series"] = len(series)
        self.router_facts["final_rss_mib"] = procstat.rss_kib(self.router.pids) / 1024

    def stop(self) -> None:
        for service in [*self.proxies, self.sim]:
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()


# --- profiling -----------------------------------------------------------------------------------


def profile(bench: Bench, scenario: Scenario, out: Path, seconds: float) -> str:
    """Sample modelroute with py-spy under one scenario's load; the top frames as Markdown.

    A separate pass after the measured ones: the sampler costs CPU, so it
    must not run while proxies are being billed.
    """
    from shutil import which

    spy = which("py-spy")
    if spy is None:
        return "_py-spy is not installed (pip install py-spy): no profile taken._"
    bench.set_sim(scenario.sim)
    argv = [spy, "record", "--pid", str(bench.router.pids[0]), "--rate", str(PROFILE_HZ),
            "--nonblocking", "--format", "raw", "--output", str(out),
            "--duration", str(int(seconds) + 2)]  # fmt: skip
    spy_proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=bench.settings.load_place,
    )  # fmt: skip
    time.sleep(0.5)
    bench.loadgen({**scenario.job, "targets": bench.router_target(), "warmup": 0.5,
                   "duration": seconds})  # fmt: skip
    _, err = spy_proc.communicate(timeout=seconds + 30)
    if not out.exists():
        return f"_py-spy failed: {err.decode()[-500:]}_"
    return top_frames(out, scenario.title)


EVENT_LOOP = "[event loop: uvloop's C code: I/O, callbacks, scheduling]"
PROFILE_HZ = 500


def top_frames(collapsed: Path, load: str, limit: int = 15) -> str:
    """Self and inclusive time per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        raw = stack.split(";")
        frames = _below_loop([_function(frame) for frame in raw])
        own[frames[-1]] += count
        lines[_function(raw[-1], line=True) if frames[-1] != EVENT_LOOP else EVENT_LOOP] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return "_no samples_"

    def rows(counter: Counter[str]) -> list[list[str]]:
        return [[f"{100 * n / total:.1f}", f"`{name}`"] for name, n in counter.most_common(limit)]

    return (
        f'{total:,} samples of modelroute under the load "{load}" (py-spy '
        f"{PROFILE_HZ} Hz, idle samples excluded; the frames that start the event loop are "
        "cut, and time spent in uvloop's C code shows as one line). A coroutine resumed by "
        "the event loop is sampled without the coroutines awaiting it, so inclusive figures "
        "of outer coroutines such as `Proxy.handle` count only their own stretches.\n\n"
        "Self time (the frame on top of the stack):\n\n"
        + report.table(["% samples", "function"], rows(own))
        + "\n\nSelf time by line (C calls such as socket writes count for the line "
        "making them):\n\n"
        + report.table(["% samples", "line"], rows(lines))
        + "\n\nInclusive time (the frame anywhere on the stack):\n\n"
        + report.table(["% samples", "function"], rows(inclusive))
    )


def _below_loop(frames: list[str]) -> list[str]:
    """The frames above ``Runner.run`` (startup boilerplate cut); the loop itself if none."""
    for i, name in enumerate(frames):
        if name.startswith("Runner.run "):
            return frames[i + 1 :] or [EVENT_LOOP]
    return frames


def _function(frame: str, line: bool = False) -> str:
    """``handle (/…/modelroute/router/proxy.py:123)`` → ``handle (modelroute/router/proxy.py)``.

    With ``line``, the line number stays.
    """
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where if line else where.rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/lib/python3.11/", "/lib/python3.12/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


# --- the document --------------------------------------------------------------------------------


def header(bench: Bench, command: str) -> str:
    s = bench.settings
    m = procstat.machine()
    nginx = next((p for p in bench.proxies if p.name == "nginx"), None)
    nginx_version = _nginx_version() if nginx else "not installed"
    mode = "quick (smoke: figures are not meaningful)" if s.quick else "full"
    return "\n".join([
        "## modelroute benchmark",
        "",
        f"Command: `{command}` ({mode}); {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; {m['os']}, Linux {m['kernel']}; "
        f"{m['python']}; nginx {nginx_version}.",
        "",
        f"Method: the proxy under test pinned to CPU {s.proxy_cpu}; the load generator and "
        f"the simulated upstream (`modelroute sim`) on CPU {s.load_cpu}; every benchmark "
        f"process at nice {s.nice}; {s.warmup:g} s warm-up, then a {s.duration:g} s window "
        "per target, the four targets back to back in each scenario.",
        "",
        "Columns: *proxy CPU µs/req* = the CPU time the kernel charged the proxy's threads "
        "(schedstat) in the window ÷ answers; *x passthrough*, *x nginx* = that figure over "
        "theirs (lower is better); *proxy core %* = the proxy's CPU time ÷ wall time; "
        "*load side %* = the same for load generator + simulator (near 100 means the load "
        "side, not the proxy, limits req/s); *added* = a percentile minus the same "
        "percentile for direct; *steal % / proxy run-queue wait %* = hypervisor steal on the "
        "machine, then the share of the window the proxy sat runnable while other work held "
        "its core (other processes on the machine): high figures there mean noisy latency "
        "columns, while CPU µs/req stays fair.",
    ])  # fmt: skip


def _nginx_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, check=False)
    return done.stderr.decode().strip().rpartition("/")[2] or "?"


def router_table(facts: dict[str, Any]) -> str:
    def get(key: str, digits: int = 1) -> str:
        return report.fmt(facts.get(key), digits)

    starts = ", ".join(f"{t:.3f}" for t in facts.get("start_to_ready_all_s", []))
    rows = [
        ["idle RSS after start (MiB)", get("idle_rss_mib")],
        ["start to ready, median (s)", f"{get('start_to_ready_s', 3)} (trials: {starts})"],
    ]
    if "leak_requests" in facts:
        rows += [
            ["leak check: RSS after warm-up (MiB)", get("leak_rss_warm_mib")],
            [f"leak check: RSS after {facts['leak_requests']:,} more requests (MiB)",
             get("leak_rss_after_mib")],
            ["leak check: growth (MiB)", get("leak_growth_mib", 2)],
            ["leak check: errors", str(facts.get("leak_errors", "-"))],
        ]  # fmt: skip
    rows += [
        ["RSS at the end of the run (MiB)", get("final_rss_mib")],
        ["health probes the upstream received (GET /v1/models)", str(facts.get("sim_probe_requests"))],
        ["`modelroute_*` series exported on /metrics", str(facts.get("metric_series"))],
    ]  # fmt: skip
    return "### modelroute alone\n\n" + report.table(["measure", "value"], rows)


def loadgen_cost(reports: list[report.ScenarioReport]) -> str:
    """How much CPU the load generator itself spent per request, on its busiest run."""
    busiest = max(
        (r for rep in reports if rep.kind == "requests" for r in rep.results),
        key=lambda r: r["rate"],
        default=None,
    )
    if busiest is None or not busiest["ok"]:
        return ""
    per_request = busiest["loadgen_cpu_ns"] / 1000 / busiest["ok"]
    return (
        f"Load generator's own CPU: {per_request:.1f} µs per request at its busiest "
        f"({busiest['rate']:,.0f} req/s against {busiest['target']}); the simulator takes "
        "the rest of the load core."
    )


def document(bench: Bench, command: str, reports: list[report.ScenarioReport], prof: str) -> str:
    parts = [header(bench, command)]
    parts += [f"> {note}" for note in bench.notes]
    parts += [r.render() for r in reports]
    parts.append(loadgen_cost(reports))
    parts.append(router_table(bench.router_facts))
    found = report.verdicts({r.key: r for r in reports}, bench.router_facts)
    parts.append("### Targets from issue 7\n\n" + report.render_verdicts(found))
    if prof:
        parts.append("### Profile of modelroute\n\n" + prof)
    return "\n\n".join(parts) + "\n"


# --- the command -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: seconds, not minutes")
    parser.add_argument("--duration", type=float, help="measurement window per target (s)")
    parser.add_argument("--streams", type=int, help="concurrent long streams (default 2000)")
    parser.add_argument("--rate", type=float, help="open-loop rate, req/s (default 1000)")
    parser.add_argument("--leak-requests", type=int, help="requests in the leak check")
    parser.add_argument("--proxy-cpu", type=int, default=1, help="CPU for the proxy under test")
    parser.add_argument("--load-cpu", type=int, default=0, help="CPU for load generator + sim")
    parser.add_argument(
        "--nice",
        type=int,
        default=-10 if os.geteuid() == 0 else 0,
        help="niceness of every benchmark process, so other work on the machine disturbs "
        "less (default: -10 as root, else 0)",
    )
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--only", help="comma-separated scenario keys to run (and 'leak')")
    parser.add_argument("--profile", type=Path, help="py-spy the router; collapsed stacks here")
    parser.add_argument("--profile-scenario", default="ns-c32", help="the load to profile under")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    return parser.parse_args(argv)


def raise_fd_limit() -> None:
    """Thousands of streams need thousands of descriptors in every process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.from_args(args)
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    raise_fd_limit()
    procstat.pin(settings.load_cpu)  # the children inherit both, then move to their CPU
    with contextlib.suppress(OSError):  # not permitted: the run is only noisier
        os.setpriority(os.PRIO_PROCESS, 0, settings.nice)
    every = scenarios(settings)
    keys = set(args.only.split(",")) if args.only else {s.key for s in every} | {"leak"}
    chosen = [s for s in every if s.key in keys]
    to_profile = next((s for s in every if s.key == args.profile_scenario), None)
    if args.profile and to_profile is None:
        raise SystemExit(f"--profile-scenario: no scenario {args.profile_scenario!r}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelroute-bench-") as tmp:
        bench = Bench(settings, Path(tmp))
        try:
            bench.start()
            reports = []
            for scenario in chosen:
                print(f"… {scenario.title}", file=sys.stderr, flush=True)
                reports.append(bench.run_scenario(scenario))
            if "leak" in keys:
                print("… leak check", file=sys.stderr, flush=True)
                bench.leak_check()
            bench.evidence()
            prof = ""
            if args.profile and to_profile is not None:
                print(f"… profiling modelroute: {to_profile.title}", file=sys.stderr, flush=True)
                prof = profile(bench, to_profile, args.profile, args.profile_seconds)
        finally:
            bench.stop()
    text = document(bench, command.strip(), reports, prof)
    text += f"\n_Run took {time.perf_counter() - started:.0f} s._\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"router": bench.router_facts, **bench.raw}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
