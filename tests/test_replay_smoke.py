"""The replay benchmark runs end to end on a small workload and its figures make sense (issue 11).

The full run (``python benchmarks/replay.py``) is for the README; here a
200-request replay through real routers and simulators must answer every
request, print its tables and bill sanely: every figure positive, the tiered
route cheaper than sending everything to GPT-4o, cached tokens found.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.scripts import run_summary


def test_small_replay_prints_sane_figures(tmp_path: Path) -> None:
    out = tmp_path / "replay.md"
    text, stdout = run_summary("replay", "--requests", "200", "--out", str(out))
    figures = {k: float(v) for k, v in text.items() if re.fullmatch(r"[\d.]+", v)}
    last = str(text)
    assert figures["requests"] == 200, last
    assert figures["failed"] == 0, last
    assert 0 < figures["tiered_usd"] < figures["all_gpt4o_usd"], last
    assert 0 < figures["perfect_usd"] < figures["all_gpt4o_usd"], last
    assert 0 < figures["cached_share"] <= 1, last
    assert figures["classifier_p99_us"] > 0, last

    tables = out.read_text()
    assert tables in stdout
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
