"""The repository layout must never shadow the standard library's ``operator``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_python_dash_m_works_from_the_repository_root() -> None:
    # -S skips site-packages, so nothing has imported the stdlib `operator` yet when
    # runpy starts: exactly the state of a fresh virtualenv. A regular package
    # ./operator would be found first (the cwd leads sys.path) and break runpy.
    result = subprocess.run(
        [sys.executable, "-S", "-m", "json.tool", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_wheel_carries_router_and_operator_under_modelroute(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("modelroute-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in (
        "modelroute/cli.py",
        "modelroute/router/proxy.py",
        "modelroute/router/http/server.py",
        "modelroute/operator/render.py",
        "modelroute/spec/model.py",
    ):
        assert module in names, module
    assert not any(name.startswith(("router/", "operator/")) for name in names)
