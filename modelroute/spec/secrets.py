"""Every Secret a route reads, in one walk of the spec.

The operator checks they exist and mounts them, the router reads and watches
them; all of them ask here, so a new Secret reference in the spec is added in
one place.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelroute.spec.model import RouteSpec, SecretKeyRef


def secret_refs(spec: RouteSpec) -> Iterator[tuple[str, SecretKeyRef]]:
    """Every Secret reference in ``spec``, with the field path of the reference."""
    for p, provider in enumerate(spec.providers):
        for e, endpoint in enumerate(provider.endpoints):
            if endpoint.api_key_secret_ref is not None:
                yield (
                    f"spec.providers[{p}].endpoints[{e}].apiKeySecretRef",
                    endpoint.api_key_secret_ref,
                )
    auth, redis = spec.auth, spec.redis
    if auth is not None:
        if auth.keys_secret_ref is not None:
            yield "spec.auth.keysSecretRef", auth.keys_secret_ref
        for c, client in enumerate(auth.clients):
            yield f"spec.auth.clients[{c}].keySecretRef", client.key_secret_ref
    if redis is not None:
        if redis.password_secret_ref is not None:
            yield "spec.redis.passwordSecretRef", redis.password_secret_ref
        if redis.tls is not None and redis.tls.ca_secret_ref is not None:
            yield "spec.redis.tls.caSecretRef", redis.tls.ca_secret_ref
