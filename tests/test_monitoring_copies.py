"""manifests/monitoring/ holds byte-identical copies of the chart's monitoring files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "charts" / "modelroute" / "files"
COPIES = ROOT / "manifests" / "monitoring"


@pytest.mark.parametrize(
    "name", ["grafana-dashboard.json", "prometheus-adapter-rules.yaml", "prometheus-rules.yaml"]
)
def test_copy_is_identical(name: str) -> None:
    assert (COPIES / name).read_bytes() == (SOURCE / name).read_bytes(), (
        f"run: cp charts/modelroute/files/{name} manifests/monitoring/"
    )
