"""Running a benchmark script as a test: its exit code and its closing summary line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_summary(script: str, *args: str, timeout: float = 60) -> tuple[dict[str, str], str]:
    """Run ``benchmarks/<script>.py`` from the repo root; its last line must read
    ``<script>: PASS key=value …``. The key/value pairs as text, and all it printed."""
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(f"{script}: PASS "), output[-4000:]
    return dict(re.findall(r"(\w+)=(\S+)", last)), result.stdout
