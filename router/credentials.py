"""Where upstream API keys come from: a mounted Secret file, or the environment.

In a cluster the operator mounts each referenced Secret at
``$MODELROUTE_SECRETS_DIR/<secret name>/<key>`` (default
``/var/run/secrets/modelroute``); keys are read when a config is loaded, so a
rotated Secret takes effect with the next reload, and never leave the pod.
"""

from __future__ import annotations

import os
from pathlib import Path

from modelroute.spec import Endpoint, SecretKeyRef

DEFAULT_SECRETS_DIR = Path("/var/run/secrets/modelroute")


def secrets_dir_from_env() -> Path:
    return Path(os.environ.get("MODELROUTE_SECRETS_DIR") or DEFAULT_SECRETS_DIR)


def secret_path(ref: SecretKeyRef, secrets_dir: Path) -> Path:
    return secrets_dir / ref.name / ref.key


def read_secret(ref: SecretKeyRef, secrets_dir: Path) -> str:
    """The text of a mounted Secret key; LookupError if it is not there."""
    path = secret_path(ref, secrets_dir)
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise LookupError(
            f"secret {ref.name}/{ref.key} is not readable at {path} ({exc.strerror})"
        ) from exc


def resolve_api_key(endpoint: Endpoint, secrets_dir: Path) -> str | None:
    """The API key for an endpoint, None if it needs none; LookupError if it is missing."""
    if endpoint.api_key_secret_ref is not None:
        return read_secret(endpoint.api_key_secret_ref, secrets_dir)
    if endpoint.api_key_env is not None:
        value = os.environ.get(endpoint.api_key_env)
        if not value:
            raise LookupError(f"environment variable {endpoint.api_key_env} is not set")
        return value
    return None
