"""Client authentication: the router accepts only the API keys in a Secret.

Keys are kept as SHA-256 digests and every digest is compared with
``hmac.compare_digest`` without stopping at a match, so the time taken says
nothing about how much of a key was right or which key matched.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from modelroute.router.credentials import checked_key, read_secret_text
from modelroute.spec import SecretKeyRef


def load_client_keys(ref: SecretKeyRef, secrets_dir: Path) -> tuple[bytes, ...]:
    """Digests of the keys in a Secret: one per line, blank lines and #comments skipped."""
    keys = [
        checked_key(line.strip(), f"a client key in secret {ref.name}/{ref.key}")
        for line in read_secret_text(ref, secrets_dir).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if not keys:
        raise LookupError(f"secret {ref.name}/{ref.key} holds no client keys")
    return tuple(hashlib.sha256(key.encode()).digest() for key in keys)


def bearer_token(authorization: bytes | None) -> bytes | None:
    if not authorization or authorization[:7].lower() != b"bearer ":
        return None
    return authorization[7:].strip()


def key_accepted(token: bytes | None, digests: tuple[bytes, ...]) -> bool:
    if token is None:
        return False
    digest = hashlib.sha256(token).digest()
    accepted = False
    for known in digests:
        accepted |= hmac.compare_digest(digest, known)
    return accepted
