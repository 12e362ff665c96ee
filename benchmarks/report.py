"""Markdown tables from the load generator's results, and the verdict against issue 7's targets.

Every figure a table shows is derived here from raw readings (CPU
nanoseconds, request counts, latency percentiles), so the arithmetic that
turns "CPU time of the proxy" into "µs per request" or "x nginx" lives in
one place and reads the same for every scenario.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Result = dict[str, Any]
PROXIES = ("passthrough", "nginx", "modelroute")


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def by_target(results: list[Result]) -> dict[str, Result]:
    return {r["target"]: r for r in results}


def cpu_per(result: Result, unit: str = "ok") -> float | None:
    """Proxy CPU µs per answer (or per SSE event with ``unit="events"``)."""
    count = result.get(unit) or 0
    if result.get("proxy_cpu_ns") is None or not count:
        return None
    cpu_ns: int = result["proxy_cpu_ns"]
    return cpu_ns / 1000 / count


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def added(result: Result, direct: Result | None, metric: str, q: str) -> float | None:
    """``result``'s percentile ``q`` of ``metric`` minus the same percentile for direct."""
    if direct is None:
        return None
    mine, floor = result[metric].get(q), direct[metric].get(q)
    if mine is None or floor is None:
        return None
    return float(mine - floor)


def noise(result: Result) -> str:
    """Steal, then how long the proxy sat runnable while other work held its core."""
    return f"{result['steal_pct']:.1f} / {fmt(result['proxy_wait_pct'], 1)}"


Cell = Callable[[Result, dict[str, Result]], str]


@dataclass(frozen=True)
class Column:
    """A table column: its title, and its cell from a result and the scenario's other rows."""

    title: str
    value: Cell


def cpu_cell(unit: str) -> Cell:
    return lambda r, rows: fmt(cpu_per(r, unit))


def versus_cell(reference: str, unit: str) -> Cell:
    def cell(r: Result, rows: dict[str, Result]) -> str:
        ref = rows.get(reference)
        return ratio(cpu_per(r, unit), cpu_per(ref, unit) if ref else None)

    return cell


def percentile_cell(metric: str, q: str) -> Cell:
    return lambda r, rows: fmt(r[metric].get(q), 2)


def added_cell(metric: str, q: str) -> Cell:
    def cell(r: Result, rows: dict[str, Result]) -> str:
        if r["target"] == "direct":
            return "-"
        return fmt(added(r, rows.get("direct"), metric, q), 2)

    return cell


@dataclass
class ScenarioReport:
    """One scenario's results and their table."""

    key: str
    title: str
    kind: str  # requests | streams | long
    results: list[Result]
    params: str = ""

    @property
    def unit(self) -> str:
        """What the proxy's CPU time is divided by: answers, or SSE events for long streams."""
        return "events" if self.kind == "long" else "ok"

    def render(self) -> str:
        rows = by_target(self.results)
        columns = self._volume() + self._cost() + self._latency() + self._health()
        body = [[c.value(r, rows) for c in columns] for r in self.results]
        errors = [
            f"- {r['target']}: {r['errors']} errors, e.g. {'; '.join(r['error_samples'][:2])}"
            for r in self.results
            if r["errors"]
        ]
        text = f"### {self.title}\n\n{self.params}\n\n" + table([c.title for c in columns], body)
        return text + ("\n\n" + "\n".join(errors) if errors else "")

    def _volume(self) -> list[Column]:
        target = Column("target", lambda r, _: r["target"])
        if self.kind == "long":
            return [
                target,
                Column("open streams", lambda r, _: str(r.get("open_streams_mid", "-"))),
                Column("SSE events/s", lambda r, _: fmt(r["events"] / r["elapsed_s"], 0)),
                Column("proxy CPU µs/event", cpu_cell(self.unit)),
            ]
        name = "stream" if self.kind == "streams" else "req"
        return [
            target,
            Column("streams/s" if name == "stream" else "req/s", lambda r, _: fmt(r["rate"], 0)),
            Column(f"proxy CPU µs/{name}", cpu_cell(self.unit)),
        ]

    def _cost(self) -> list[Column]:
        return [
            Column("x passthrough", versus_cell("passthrough", self.unit)),
            Column("x nginx", versus_cell("nginx", self.unit)),
            Column("proxy core %", lambda r, _: fmt(r["proxy_core_pct"], 0)),
            Column("load side %", lambda r, _: fmt(r["load_side_pct"], 0)),
        ]

    def _latency(self) -> list[Column]:
        if self.kind == "long":
            return [
                Column("gap p50 ms", percentile_cell("gap_ms", "p50")),
                Column("gap p99 ms", percentile_cell("gap_ms", "p99")),
                Column("added gap p99 ms", added_cell("gap_ms", "p99")),
                Column("RSS/stream KiB", lambda r, _: fmt(rss_per_stream(r), 1)),
            ]
        columns = [
            Column("p50 ms", percentile_cell("latency_ms", "p50")),
            Column("p99 ms", percentile_cell("latency_ms", "p99")),
            Column("added p50 ms", added_cell("latency_ms", "p50")),
            Column("added p99 ms", added_cell("latency_ms", "p99")),
        ]
        if self.kind == "streams":
            columns += [
                Column("added TTFT p50 ms", added_cell("ttft_ms", "p50")),
                Column("added TTFT p99 ms", added_cell("ttft_ms", "p99")),
            ]
        return columns

    def _health(self) -> list[Column]:
        return [
            Column("errors", lambda r, _: str(r["errors"])),
            Column("steal % / proxy run-queue wait %", lambda r, _: noise(r)),
        ]


def rss_per_stream(result: Result) -> float | None:
    streams = result.get("open_streams_mid") or 0
    if result.get("rss_mid_kib") is None or not streams or not result.get("rss_before_kib"):
        return None
    return float((result["rss_mid_kib"] - result["rss_before_kib"]) / streams)


# --- the verdict -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: not measured in this run

    def row(self) -> list[str]:
        mark = "-" if self.met is None else ("met" if self.met else "**missed**")
        return [self.target, self.measured, mark]


def cpu_ratio(report: ScenarioReport | None, reference: str) -> float | None:
    if report is None:
        return None
    rows = by_target(report.results)
    mine = cpu_per(rows["modelroute"], report.unit) if "modelroute" in rows else None
    ref = cpu_per(rows[reference], report.unit) if reference in rows else None
    if mine is None or not ref:
        return None
    return mine / ref


def ratio_verdict(
    reports: dict[str, ScenarioReport], key: str, reference: str, limit: float, label: str
) -> Verdict:
    value = cpu_ratio(reports.get(key), reference)
    measured = "-" if value is None else f"{value:.2f}x"
    return Verdict(
        f"{label} ≤ {limit}x {reference}", measured, None if value is None else value <= limit
    )


def limit_verdict(
    label: str, value: float | None, limit: float, unit: str, digits: int = 2
) -> Verdict:
    measured = "-" if value is None else f"{value:.{digits}f} {unit}"
    return Verdict(
        f"{label} ≤ {limit:g} {unit}", measured, None if value is None else value <= limit
    )


def with_noise(verdict: Verdict, result: Result) -> Verdict:
    """Latency verdicts name the proxy's run-queue wait: other work on its core shows there."""
    wait = result.get("proxy_wait_pct")
    if wait is None:
        return verdict
    measured = f"{verdict.measured} (proxy run-queue wait {wait:.1f} %)"
    return Verdict(verdict.target, measured, verdict.met)


def verdicts(reports: dict[str, ScenarioReport], router: dict[str, Any]) -> list[Verdict]:
    """Issue 7's targets, each with this run's figure."""
    found: list[Verdict] = []
    for key, label in (
        ("ns-c1", "CPU/req, non-streaming c=1"),
        ("ns-c32", "CPU/req, non-streaming c=32"),
    ):
        found.append(ratio_verdict(reports, key, "passthrough", 1.0, label + " (floor)"))
        found.append(ratio_verdict(reports, key, "passthrough", 0.5, label + " (target)"))
        found.append(ratio_verdict(reports, key, "nginx", 1.5, label + " (aim)"))
    for key, label in (
        ("stream-c1", "CPU/stream, 16 chunks c=1"),
        ("stream-c8", "CPU/stream, 16 chunks c=8"),
    ):
        found.append(ratio_verdict(reports, key, "passthrough", 1.0, label + " (floor)"))
    c1 = reports.get("ns-c1")
    if c1 is not None:
        rows = by_target(c1.results)
        mine, direct = rows.get("modelroute"), rows.get("direct")
        if mine is not None:
            for q, limit in (("p50", 0.5), ("p99", 2.0)):
                verdict = limit_verdict(
                    f"added {q} at c=1", added(mine, direct, "latency_ms", q), limit, "ms"
                )
                found.append(with_noise(verdict, mine))
    long = reports.get("long")
    if long is not None:
        rows = by_target(long.results)
        mine = rows.get("modelroute")
        if mine is not None:
            streams = mine.get("open_streams_mid", 0)
            gap = added(mine, rows.get("direct"), "gap_ms", "p99")
            verdict = limit_verdict(f"added inter-chunk p99, {streams} streams", gap, 5.0, "ms")
            found.append(with_noise(verdict, mine))
            found.append(limit_verdict("RSS per open stream", rss_per_stream(mine), 50.0, "KiB", 1))
    found.append(limit_verdict("idle RSS", router.get("idle_rss_mib"), 80.0, "MiB", 1))
    found.append(limit_verdict("start to ready", router.get("start_to_ready_s"), 1.0, "s", 3))
    if "leak_requests" in router:
        growth, requests = router["leak_growth_mib"], router["leak_requests"]
        label = f"RSS growth over {requests:,} requests after warm-up"
        found.append(limit_verdict(label, growth, 1.0, "MiB", 2))
    return found


def render_verdicts(found: list[Verdict]) -> str:
    return table(["target (issue 7)", "measured", "verdict"], (v.row() for v in found))
