"""The replay benchmark runs end to end on a small workload and its figures make sense (issue 11).

The full run (``python benchmarks/replay.py``) is for the README; here a
200-request replay through real routers and simulators must answer every
request, print its tables and bill sanely: every figure positive, the tiered
route cheaper than sending everything to GPT-4o, cached tokens found.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_small_replay_prints_sane_figures(tmp_path: Path) -> None:
    out = tmp_path / "replay.md"
    result = subprocess.run(
        [sys.executable, "benchmarks/replay.py", "--requests", "200", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("replay: PASS "), output[-4000:]
    figures = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", last)}
    assert figures["requests"] == 200, last
    assert figures["failed"] == 0, last
    assert 0 < figures["tiered_usd"] < figures["all_gpt4o_usd"], last
    assert 0 < figures["perfect_usd"] < figures["all_gpt4o_usd"], last
    assert 0 < figures["cached_share"] <= 1, last
    assert figures["classifier_p99_us"] > 0, last

    tables = out.read_text()
    assert tables in result.stdout
    for heading in (
        "| route | cost (USD) |",
        "| label \\ tier | economy | standard | premium |",
        "| prompt cache | tokens |",
        "| endpoint | chat requests |",
    ):
        assert heading in tables, tables
    # The confusion matrix accounts for every request: 160 simple and 40 hard.
    for label, total in (("simple", 160), ("hard", 40)):
        row = next(line for line in tables.splitlines() if line.startswith(f"| {label} |"))
        assert sum(int(n.replace(",", "")) for n in re.findall(r"\| ([\d,]+) \(", row)) == total
