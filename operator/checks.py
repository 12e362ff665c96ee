"""Semantic checks that only matter when a route runs in a cluster.

:func:`modelroute.spec.parse_route` decides whether a spec makes sense at all;
the checks here decide whether the operator can run it: names that must fit
Kubernetes' object-name rules, the HPA's limits, and Secrets that must exist.
Names and limits are checked by the spec model itself (and repeated as CEL
rules in the CRD); the Secret check needs the cluster, reached through a
lookup the caller passes in, so this module stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from modelroute.spec import ModelRoute, SecretKeyRef, SpecError, SpecInvalid, parse_route
from modelroute.spec.secrets import secret_refs

SecretKeys = Callable[[str], Collection[str] | None]
"""Secret name → the keys it holds, or None if there is no such Secret."""

def secret_references(route: ModelRoute) -> Iterator[tuple[str, SecretKeyRef]]:
    """Every Secret reference in the spec, with the field path of the reference."""
    return secret_refs(route.spec)


def check_secrets(route: ModelRoute, namespace: str, secret_keys: SecretKeys) -> list[SpecError]:
    """Errors for Secrets or keys that do not exist; each Secret is looked up once."""
    errors: list[SpecError] = []
    found: dict[str, Collection[str] | None] = {}
    for path, ref in secret_references(route):
        if ref.name not in found:
            found[ref.name] = secret_keys(ref.name)
        keys = found[ref.name]
        if keys is None:
            errors.append(
                SpecError(
                    f"{path}.name", f'Secret "{ref.name}" not found in namespace "{namespace}"'
                )
            )
        elif ref.key not in keys:
            errors.append(SpecError(f"{path}.key", f'Secret "{ref.name}" has no key "{ref.key}"'))
    return errors


def validate(
    document: Mapping[str, Any], namespace: str, secret_keys: SecretKeys | None
) -> list[SpecError]:
    """Every reason not to apply ``document``; Secrets are checked only given a lookup."""
    try:
        route = parse_route(document)
    except SpecInvalid as exc:
        return exc.errors
    if secret_keys is None:
        return []
    return check_secrets(route, namespace, secret_keys)
