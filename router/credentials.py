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


def checked_key(value: str, where: str) -> str:
    """``value`` if it can go into a header line; LookupError naming ``where`` if not.

    A key with a line break (a Secret made with ``echo`` and a second line)
    would split every request head sent with it, and an upstream's 400 that
    quotes the malformed head would show the key to clients. The message
    never contains the value.
    """
    if not value:
        raise LookupError(f"{where} is empty")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value) or not value.isascii():
        raise LookupError(
            f"{where} contains a control character, space or non-ASCII character; "
            "an API key is one line of printable ASCII"
        )
    return value


def read_secret_text(ref: SecretKeyRef, secrets_dir: Path) -> str:
    """The text of a mounted Secret key; LookupError if it is missing or not UTF-8."""
    path = secret_path(ref, secrets_dir)
    where = f"secret {ref.name}/{ref.key}"
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise LookupError(f"{where} is not readable at {path} ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise LookupError(f"{where} is not valid UTF-8 text") from None


def read_secret(ref: SecretKeyRef, secrets_dir: Path) -> str:
    """One API key from a mounted Secret; LookupError if it is missing or unusable."""
    text = read_secret_text(ref, secrets_dir)
    return checked_key(text.strip(), f"secret {ref.name}/{ref.key}")


def resolve_api_key(endpoint: Endpoint, secrets_dir: Path) -> str | None:
    """The API key for an endpoint, None if it needs none; LookupError if it is missing."""
    if endpoint.api_key_secret_ref is not None:
        return read_secret(endpoint.api_key_secret_ref, secrets_dir)
    if endpoint.api_key_env is not None:
        value = os.environ.get(endpoint.api_key_env)
        if not value:
            raise LookupError(f"environment variable {endpoint.api_key_env} is not set")
        return checked_key(value.strip(), f"environment variable {endpoint.api_key_env}")
    return None
