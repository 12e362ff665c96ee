"""The soak runs for seconds, passes its checks and did real work (issue 16).

The long run (``python benchmarks/soak.py --seconds 300``) is for the closing
note; here only that the short one passes, and that it really sent hundreds of
requests through faults and disconnects, read from its last line.
"""

from __future__ import annotations

from tests.scripts import run_summary


def test_short_soak_passes_after_real_work() -> None:
    figures, _ = run_summary("soak", "--seconds", "8", "--warmup", "2", "--settle", "2")
    last = str(figures)
    assert int(figures["requests"]) > 500, last
    assert int(figures["ok"]) > 250, last
    assert int(figures["faults"]) >= 3, last
    assert int(figures["disconnects"]) > 50, last
    # The router passed the disconnects on: the upstreams saw requests cancelled.
    assert int(figures["upstream_cancelled"]) > 0, last
    for reading in ("rss_mib", "fds", "upstream"):
        assert "->" in figures[reading], last
