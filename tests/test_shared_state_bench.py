"""The shared-state benchmark's short run keeps issue 12's promises.

The full run (``python benchmarks/shared_state.py``) is for the closing note;
here the quick one — a redis-server, two simulators and three real routers:
200 concurrent requests against a budget that fits about a third of them, 20
prompts sent ten times each, 3 s outages of Redis (stopped, then killed and
restarted) under 20 clients — and the figures of its last line that could
fail: no overshoot, no failed request in any phase of either outage, every
router back on Redis, the cache answering the repeats, and a restarted router
answered from Redis at once.
"""

from __future__ import annotations

from pathlib import Path

from tests.scripts import run_summary


def test_quick_run_overspends_nothing_fails_nothing_and_shares_the_cache(tmp_path: Path) -> None:
    out = tmp_path / "shared_state.md"
    figures, stdout = run_summary("shared_state", "--quick", "--out", str(out), timeout=120)
    last = str(figures)
    assert float(figures["overshoot_usd"]) == 0, last
    # The budget did run out: some requests were answered, the rest refused.
    for answered in figures["answered"].split(","):
        assert 0 < int(answered) < int(figures["requests"]), last
    for how in ("stop", "kill"):
        for phase in ("before", "during", "after"):
            assert figures[f"{how}_failed_{phase}"] == "0", last
        assert figures[f"{how}_up_after_s"] != "never", last
    assert float(figures["cache_hit_ratio"]) >= 0.85, last
    assert figures["restart_first"] == "hit", last

    report = out.read_text()
    assert report in stdout
    assert report.startswith("# Shared state"), report[:200]
    assert "`python benchmarks/shared_state.py --quick --out " in report, report[:400]
