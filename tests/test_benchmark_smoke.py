"""The benchmark runs end to end in its quick mode and prints its tables.

Only that: timings are never asserted in tests (they depend on the machine);
the figures live in docs/performance.md, from a full run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_prints_its_tables(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = out.read_text()
    assert "proxy CPU µs/req" in table
    assert "### Non-streaming, concurrency 32" in table
    for target in ("direct", "passthrough", "modelroute"):
        rows = [line for line in table.splitlines() if line.startswith(f"| {target} |")]
        assert rows, f"no {target} rows"
    # Every modelroute row measured something: a CPU figure, not a dash.
    for row in (line for line in table.splitlines() if line.startswith("| modelroute |")):
        assert row.split("|")[3].strip() not in ("", "-"), row
