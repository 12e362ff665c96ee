"""The soak runs for seconds, passes its checks and did real work (issue 16).

The long run (``python benchmarks/soak.py --seconds 300``) is for the closing
note; here only that the short one passes, and that it really sent hundreds of
requests through faults and disconnects, read from its last line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_short_soak_passes_after_real_work() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--seconds", "8", "--warmup", "2", "--settle", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("soak: PASS "), output[-4000:]
    figures = dict(re.findall(r"(\w+)=(\S+)", last))
    assert int(figures["requests"]) > 500, last
    assert int(figures["ok"]) > 250, last
    assert int(figures["faults"]) >= 3, last
    assert int(figures["disconnects"]) > 50, last
    # The router passed the disconnects on: the upstreams saw requests cancelled.
    assert int(figures["upstream_cancelled"]) > 0, last
    for reading in ("rss_mib", "fds", "upstream"):
        assert "->" in figures[reading], last
