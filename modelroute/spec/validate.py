"""Rules that span fields: references between sections, uniqueness, ranges.

The schema walk in :mod:`modelroute.spec.schema` checks each field on its own;
what needs two fields at once lives here. The CRD carries the rules CEL can
express as ``x-kubernetes-validations`` too, so the API server rejects them
early; this module is what the router and ``modelroute validate`` rely on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from modelroute.spec.model import QUANTITY, Model, RouteSpec
from modelroute.spec.schema import SpecError

DNS_1035 = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
CHILD_NAME_MAX = 63  # Service names are DNS-1035 labels; children are named <route>-<region>


def _duplicates(names: Iterable[str], path: str, what: str) -> list[SpecError]:
    seen: set[str] = set()
    errors = []
    for i, name in enumerate(names):
        if name in seen:
            errors.append(SpecError(f"{path}[{i}].name", f'duplicate {what} name "{name}"'))
        seen.add(name)
    return errors


def check_names(name: str, spec: RouteSpec) -> list[SpecError]:
    """Names the Kubernetes children derive from: Services need DNS-1035 labels."""
    errors: list[SpecError] = []
    if not re.fullmatch(DNS_1035, name):
        errors.append(
            SpecError(
                "metadata.name",
                f'"{name}" must start with a letter and hold only lowercase letters, '
                "digits and '-' (it names the route's Services)",
            )
        )
    for i, region in enumerate(spec.regions):
        if len(name) + 1 + len(region.name) > CHILD_NAME_MAX:
            errors.append(
                SpecError(
                    f"spec.regions[{i}].name",
                    f"{name}-{region.name} is longer than {CHILD_NAME_MAX} characters "
                    "(per-region objects are named <route>-<region>)",
                )
            )
    return errors


def _check_tiers(model: Model, m: int, chains: set[str], path: str) -> list[SpecError]:
    """A model is a chain or a tier set, and a tier set names chains of the route."""
    where = f"{path}.models[{m}]"
    if bool(model.targets) == (model.tiers is not None):
        return [SpecError(where, "set exactly one of targets (a fallback chain) or tiers")]
    errors: list[SpecError] = []
    if model.tiers is not None:
        for tier in ("economy", "standard", "premium"):
            name = getattr(model.tiers, tier)
            if name is not None and name not in chains:
                errors.append(
                    SpecError(
                        f"{where}.tiers.{tier}",
                        f'every tier must name a model of this route with targets: "{name}" '
                        "is not one",
                    )
                )
    return errors


def check_references(spec: RouteSpec, path: str = "spec") -> list[SpecError]:
    """Every cross-field problem in ``spec``, each with its field path."""
    errors: list[SpecError] = []
    errors += _duplicates((r.name for r in spec.regions), f"{path}.regions", "region")
    errors += _duplicates((p.name for p in spec.providers), f"{path}.providers", "provider")
    errors += _duplicates((m.name for m in spec.models), f"{path}.models", "model")

    regions = {region.name for region in spec.regions}
    providers = {provider.name: provider for provider in spec.providers}
    for p, provider in enumerate(spec.providers):
        for e, endpoint in enumerate(provider.endpoints):
            where = f"{path}.providers[{p}].endpoints[{e}]"
            if endpoint.region not in regions:
                errors.append(SpecError(f"{where}.region", f'unknown region "{endpoint.region}"'))
            if endpoint.api_key_secret_ref is not None and endpoint.api_key_env is not None:
                errors.append(SpecError(where, "set apiKeySecretRef or apiKeyEnv, not both"))
    chains = {model.name for model in spec.models if model.targets}
    for m, model in enumerate(spec.models):
        errors += _check_tiers(model, m, chains, path)
        for t, target in enumerate(model.targets):
            if target.provider not in providers:
                errors.append(
                    SpecError(
                        f"{path}.models[{m}].targets[{t}].provider",
                        f'unknown provider "{target.provider}"',
                    )
                )
        seen: set[tuple[str, str]] = set()
        for t, target in enumerate(model.targets):
            pair = (target.provider, target.model)
            if pair in seen:
                errors.append(
                    SpecError(
                        f"{path}.models[{m}].targets[{t}]", "target listed twice in the chain"
                    )
                )
            seen.add(pair)

    scaling = spec.autoscaling
    if scaling.min_replicas > scaling.max_replicas:
        errors.append(
            SpecError(
                f"{path}.autoscaling.minReplicas",
                f"must not exceed maxReplicas ({scaling.min_replicas} > {scaling.max_replicas})",
            )
        )
    backoff = spec.resilience.retries.backoff
    if backoff.base > backoff.max:
        errors.append(
            SpecError(f"{path}.resilience.retries.backoff.base", "must not exceed backoff.max")
        )
    outlier = spec.resilience.outlier_detection
    if outlier.base_ejection_time > outlier.max_ejection_time:
        errors.append(
            SpecError(
                f"{path}.resilience.outlierDetection.baseEjectionTime",
                "must not exceed maxEjectionTime",
            )
        )
    timeouts = spec.resilience.timeouts
    if timeouts.first_token > timeouts.total:
        errors.append(
            SpecError(f"{path}.resilience.timeouts.firstToken", "must not exceed timeouts.total")
        )
    if scaling.scale_down_stabilization > 3600:
        errors.append(
            SpecError(
                f"{path}.autoscaling.scaleDownStabilization",
                "must not exceed 1h (the HorizontalPodAutoscaler's limit)",
            )
        )
    errors += _check_shared_state(spec, path)
    for kind in ("requests", "limits"):
        for name, quantity in getattr(spec.resources, kind).items():
            if name not in ("cpu", "memory", "ephemeral-storage"):
                errors.append(SpecError(f"{path}.resources.{kind}.{name}", "unknown resource"))
            elif not re.fullmatch(QUANTITY, quantity):
                errors.append(
                    SpecError(f"{path}.resources.{kind}.{name}", f"not a quantity: {quantity!r}")
                )
    return errors


HASHED_CLIENT = re.compile(r"key-[0-9a-f]{8}")


def _check_shared_state(spec: RouteSpec, path: str) -> list[SpecError]:
    """Client names, budgets and rate limits: names unique, references resolvable."""
    errors: list[SpecError] = []
    clients: set[str] = set()
    if spec.auth is not None:
        if spec.auth.keys_secret_ref is None and not spec.auth.clients:
            errors.append(SpecError(f"{path}.auth", "set keysSecretRef or clients (or both)"))
        clients = {client.name for client in spec.auth.clients}
        errors += _duplicates((c.name for c in spec.auth.clients), f"{path}.auth.clients", "client")
    models = {model.name: model for model in spec.models}

    def check_client(name: str | None, where: str) -> None:
        if name is None:
            return
        if spec.auth is None:
            errors.append(SpecError(where, "names a client, but spec.auth is not set"))
        elif name not in clients and not HASHED_CLIENT.fullmatch(name):
            errors.append(SpecError(where, f'unknown client "{name}" (not in spec.auth.clients)'))

    def check_model(name: str | None, where: str) -> None:
        if name is not None and name not in models:
            errors.append(SpecError(where, f'unknown model "{name}"'))

    redis = spec.redis
    if redis is not None:
        if redis.username and redis.password_secret_ref is None:
            errors.append(SpecError(f"{path}.redis.username", "a user name needs passwordSecretRef"))
        if redis.tls is not None and not redis.url.startswith("rediss://"):
            errors.append(SpecError(f"{path}.redis.tls", "TLS settings need a rediss:// url"))
    errors += _duplicates((b.name for b in spec.budgets), f"{path}.budgets", "budget")
    for b, budget in enumerate(spec.budgets):
        where = f"{path}.budgets[{b}]"
        check_client(budget.client, f"{where}.client")
        check_model(budget.model, f"{where}.model")
        check_model(budget.degrade_to, f"{where}.degradeTo")
        if budget.on_exceeded == "degrade" and budget.degrade_to is None:
            tiered = budget.model is not None and budget.model in models and (
                models[budget.model].tiers is not None
            )
            if not tiered:
                errors.append(
                    SpecError(
                        f"{where}.degradeTo",
                        "onExceeded: degrade needs degradeTo, unless model names a tiered model "
                        "(its economy tier answers)",
                    )
                )
    errors += _duplicates((r.name for r in spec.rate_limits), f"{path}.rateLimits", "rate limit")
    for r, limit in enumerate(spec.rate_limits):
        where = f"{path}.rateLimits[{r}]"
        check_client(limit.client, f"{where}.client")
        check_model(limit.model, f"{where}.model")
        if limit.requests_per_minute is None and limit.tokens_per_minute is None:
            errors.append(SpecError(where, "set requestsPerMinute, tokensPerMinute or both"))
    return errors
