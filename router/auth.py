"""Client authentication and identity: which named client key sent a request.

Keys come from Secrets: ``spec.auth.clients[]`` names each holder (a team
or an application); keys in the flat ``spec.auth.keysSecretRef`` list are
named ``key-`` plus the first 8 hex digits of their SHA-256 — a label that
identifies the key in metrics, budgets and limits without revealing it.

Keys are kept as SHA-256 digests, and every digest is compared with
``hmac.compare_digest`` without stopping at a match, so the time taken says
nothing about how much of a key was right or which key matched.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from modelroute.router.credentials import checked_key, read_secret_text
from modelroute.spec import SecretKeyRef
from modelroute.spec.model import ClientAuth

ANONYMOUS = "anonymous"  # the tenant of a route without client keys


def _keys_in(ref: SecretKeyRef, secrets_dir: Path) -> list[str]:
    keys = [
        checked_key(line.strip(), f"a client key in secret {ref.name}/{ref.key}")
        for line in read_secret_text(ref, secrets_dir).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if not keys:
        raise LookupError(f"secret {ref.name}/{ref.key} holds no client keys")
    return keys


def hashed_name(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


class ClientKeys:
    """Digest → client name, for every accepted key."""

    def __init__(self, named: list[tuple[bytes, str]]) -> None:
        self._named = tuple(named)

    def __bool__(self) -> bool:
        return bool(self._named)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for _, name in self._named)

    def identify(self, token: bytes | None) -> str | None:
        """The name of the client whose key ``token`` is, or None."""
        if token is None:
            return None
        digest = hashlib.sha256(token).digest()
        found: str | None = None
        for known, name in self._named:
            if hmac.compare_digest(digest, known):
                found = name  # no break: every digest is compared
        return found


NO_KEYS = ClientKeys([])


def load_client_keys(auth: ClientAuth, secrets_dir: Path) -> ClientKeys:
    """Every accepted key of ``spec.auth``, named; raises LookupError naming the Secret.

    A name is a tenant (of the cache, budgets and limits), so two flat keys whose
    labels match (32 bits of their hashes), or a client named as a flat key's label,
    are refused rather than merged."""
    named: list[tuple[bytes, str]] = []
    labelled: dict[str, bytes] = {}  # a flat key's label -> its digest
    if auth.keys_secret_ref is not None:
        ref = auth.keys_secret_ref
        for key in _keys_in(ref, secrets_dir):
            digest, label = hashlib.sha256(key.encode()).digest(), hashed_name(key)
            if labelled.setdefault(label, digest) != digest:
                raise LookupError(
                    f"two client keys in secret {ref.name}/{ref.key} share the label {label} "
                    "(the first 8 hex digits of their SHA-256): replace one of them"
                )
            named.append((digest, label))
    for client in auth.clients:
        if client.name in labelled:
            raise LookupError(
                f"client name {client.name} is also the label of a key in "
                "auth.keysSecretRef: name the client otherwise"
            )
        for key in _keys_in(client.key_secret_ref, secrets_dir):
            named.append((hashlib.sha256(key.encode()).digest(), client.name))
    return ClientKeys(named)


def bearer_token(authorization: bytes | None) -> bytes | None:
    if not authorization or authorization[:7].lower() != b"bearer ":
        return None
    return authorization[7:].strip()


def client_token(headers: dict[bytes, bytes]) -> bytes | None:
    """The key a client sent: ``Authorization: Bearer`` (OpenAI) or ``x-api-key``
    (Anthropic's SDK)."""
    token = bearer_token(headers.get(b"authorization"))
    if token is None:
        api_key = headers.get(b"x-api-key")
        token = api_key.strip() if api_key else None
    return token
