"""The routing table: a ModelRoute compiled for one region, ready for the hot path.

Everything a request needs that depends only on the config is computed here
once per (re)load: parsed upstream origins, pre-encoded request-line prefixes
and ``Authorization`` headers, endpoint order by locality, prices, metric
children, and the ``/v1/models`` answer. A reload builds a new table and swaps
one reference; requests in flight keep the table they started with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from modelroute.router.auth import NO_KEYS, ClientKeys, load_client_keys
from modelroute.router.credentials import read_secret_text, resolve_api_key
from modelroute.router.health import EndpointHealth
from modelroute.router.http.client import Origin, base_query, split_base_url
from modelroute.router.metrics import OTHER, Metrics
from modelroute.spec import ModelRoute, RouteSpec, SpecError, SpecInvalid
from modelroute.spec.model import Model, ModelInfo, Price, Tier
from modelroute.spec.secrets import secret_refs

API_PATHS = ("/chat/completions", "/completions", "/embeddings", "/responses")
MESSAGES_PATH = "/messages"  # Anthropic's: its key goes in x-api-key
ANTHROPIC_VERSION = b"anthropic-version: 2023-06-01\r\n"  # when the client sends none
DEFAULT_APIS = frozenset({"chat", "completions", "embeddings"})


@dataclass(slots=True, eq=False)
class Endpoint:
    """One provider in one region: where requests go and how they authenticate."""

    provider: str
    region: str
    base_url: str
    origin: Origin
    path_prefix: str
    query: str  # the base URL's query string with its "?", or ""
    auth_header: bytes  # b"authorization: Bearer ...\r\n", or b"" for none
    local: bool
    key: str  # stable identity across reloads: provider, region, URL
    heads: dict[str, bytes]  # per API path: request line, host, content type, auth
    upstream_duration: Any  # metric children, resolved once
    outcomes: dict[str, Any]
    _attempts: Any
    # Set by the health monitor: this endpoint's state, and its provider's pool.
    health: EndpointHealth = field(default_factory=lambda: EndpointHealth("", "", ""))
    pool: tuple[EndpointHealth, ...] = ()

    def outcome(self, outcome: str) -> Any:
        child = self.outcomes.get(outcome)
        if child is None:
            child = self.outcomes[outcome] = self._attempts.labels(
                self.provider, self.region, outcome
            )
        return child

    def __repr__(self) -> str:  # never show the key
        return f"Endpoint({self.provider}@{self.region} {self.base_url})"


@dataclass(slots=True, eq=False)
class Target:
    """One link of a model's fallback chain, with its endpoints nearest first."""

    provider: str
    model: str
    endpoints: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]  # in the router's own region
    remote: tuple[Endpoint, ...]
    input_price: float  # USD per token
    output_price: float
    priced: bool
    tokens_in: Any  # metric children, resolved once
    tokens_out: Any
    cost: Any
    cached_price: float = 0.0  # USD per prompt token served from the provider's cache
    tokens_cached: Any = None
    # From the model registry (None: not declared, so not checked).
    context_window: int | None = None
    max_output: int | None = None
    capabilities: frozenset[str] | None = None
    apis: frozenset[str] = DEFAULT_APIS  # what its provider serves natively


@dataclass(frozen=True, slots=True, eq=False)
class Candidate:
    """One endpoint of one chain target: what a request may try. Built once per table."""

    target: Target
    endpoint: Endpoint
    index: int  # position of the target in the chain (0: the first choice)
    identity: tuple[tuple[bytes, bytes], ...]  # x-modelroute-provider, -region, -model


@dataclass(slots=True, eq=False)
class Route:
    """A client-facing model name and its fallback chain."""

    name: str
    targets: tuple[Target, ...]
    # Per target: its candidates in the router's own region, then in the others.
    groups: tuple[tuple[tuple[Candidate, ...], tuple[Candidate, ...]], ...]
    fallback_counters: tuple[Any, ...]  # per target, for modelroute_fallbacks_total
    duration: Any  # metric children, resolved once
    ttft: Any
    # Filters apply (some target declares limits or capabilities, or a cost ceiling is set).
    checked: bool = False
    max_cost: float | None = None  # default per-request cost ceiling, USD
    tiers: TierSet | None = None  # a tier set instead of a chain (targets is empty)
    # Session affinity pays off (and is paid for): some target has several endpoints here.
    sticky: bool = False
    # Some target's provider serves other APIs than the default three: which target may
    # take which request is checked per request.
    api_limited: bool = False


@dataclass(slots=True, eq=False)
class TierSet:
    """A client-facing model that picks one of its tiers (each a chain route) per request."""

    routes: dict[str, Route]  # economy / standard / premium -> its chain
    order: tuple[str, ...]  # tiers present, cheapest first (degradation walks down it)
    degrade: bool
    rules: tuple[tuple[str, Tier], ...]  # (system prompt text, tier), first match wins
    decisions: dict[str, Any]  # tier -> modelroute_tier_decisions_total child


@dataclass(slots=True, eq=False)
class RoutingTable:
    route: ModelRoute
    region: str
    routes: Mapping[str, Route]
    endpoints: tuple[Endpoint, ...]
    client_keys: ClientKeys  # accepted client keys and whose they are
    models_body: bytes
    config_hash: str
    spec: RouteSpec  # route.spec, read on every request
    secrets_dir: Path = Path("/nonexistent")  # where the Secrets' files are mounted
    model_objects: Mapping[str, dict[str, Any]] = field(default_factory=dict)  # /v1/models


def build_table(
    route: ModelRoute, region: str | None, secrets_dir: Path, metrics: Metrics
) -> RoutingTable:
    """Compile ``route`` for ``region``; raise SpecInvalid if keys cannot be resolved."""
    spec = route.spec
    regions = [r.name for r in spec.regions]
    region = region or regions[0]
    errors: list[SpecError] = []
    if region not in regions:
        errors.append(
            SpecError("region", f'"{region}" is not one of spec.regions ({", ".join(regions)})')
        )

    endpoints_by_provider: dict[str, list[Endpoint]] = {}
    all_endpoints: list[Endpoint] = []
    for p, provider in enumerate(spec.providers):
        for e, ep in enumerate(provider.endpoints):
            where = f"spec.providers[{p}].endpoints[{e}]"
            try:
                api_key = resolve_api_key(ep, secrets_dir)
            except LookupError as exc:
                errors.append(SpecError(where, str(exc)))
                continue
            origin, prefix = split_base_url(ep.base_url)
            query = base_query(ep.base_url)
            auth = b"authorization: Bearer " + api_key.encode() + b"\r\n" if api_key else b""
            x_api_key = b"x-api-key: " + api_key.encode() + b"\r\n" if api_key else b""
            endpoint = Endpoint(
                provider=provider.name,
                region=ep.region,
                base_url=ep.base_url,
                origin=origin,
                path_prefix=prefix,
                query=query,
                # Probes authenticate as the provider expects: an Anthropic-only
                # provider (messages, no chat) takes its key in x-api-key.
                auth_header=(
                    x_api_key + ANTHROPIC_VERSION
                    if "messages" in provider.apis and "chat" not in provider.apis
                    else auth
                ),
                local=ep.region == region,
                key=f"{provider.name}/{ep.region}/{ep.base_url}",
                heads={
                    path: b"POST %s%s%s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n%s"
                    % (prefix.encode(), path.encode(), query.encode(), origin.host_header, auth)
                    for path in API_PATHS
                }
                | {
                    MESSAGES_PATH: b"POST %s%s%s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n%s"
                    % (
                        prefix.encode(),
                        MESSAGES_PATH.encode(),
                        query.encode(),
                        origin.host_header,
                        x_api_key,
                    )
                },
                upstream_duration=metrics.upstream_duration.labels(provider.name, ep.region),
                outcomes={},
                _attempts=metrics.upstream_attempts,
            )
            endpoints_by_provider.setdefault(provider.name, []).append(endpoint)
            all_endpoints.append(endpoint)

    client_keys = NO_KEYS
    if spec.auth is not None:
        try:
            client_keys = load_client_keys(spec.auth, secrets_dir)
        except LookupError as exc:
            errors.append(SpecError("spec.auth", str(exc)))
    for where, ref in secret_refs(spec):
        if not where.startswith("spec.redis."):
            continue  # provider and client keys were read above
        try:
            read_secret_text(ref, secrets_dir)
        except LookupError as exc:
            errors.append(SpecError(where, str(exc)))
    if errors:
        raise SpecInvalid(errors)

    routes: dict[str, Route] = {}
    for model in spec.models:
        if model.tiers is not None:
            continue  # built below, from the chains they name
        targets = []
        for target in model.targets:
            provider = spec.provider(target.provider)
            info = provider.models.get(target.model)
            price = _price(provider.pricing.get(target.model), info)
            endpoints = sorted(
                endpoints_by_provider.get(target.provider, []), key=lambda ep: not ep.local
            )
            targets.append(
                Target(
                    provider=target.provider,
                    model=target.model,
                    endpoints=tuple(endpoints),
                    local=tuple(ep for ep in endpoints if ep.local),
                    remote=tuple(ep for ep in endpoints if not ep.local),
                    input_price=price.input / 1e6 if price else 0.0,
                    output_price=price.output / 1e6 if price else 0.0,
                    priced=price is not None,
                    tokens_in=metrics.tokens.labels(target.provider, target.model, "input"),
                    tokens_out=metrics.tokens.labels(target.provider, target.model, "output"),
                    cost=metrics.cost.labels(target.provider, target.model),
                    cached_price=(price.cached if price else 0.0) / 1e6,
                    tokens_cached=metrics.tokens.labels(
                        target.provider, target.model, "cached_input"
                    ),
                    context_window=info.context_window if info else None,
                    max_output=info.max_output_tokens if info else None,
                    capabilities=(
                        frozenset(info.capabilities)
                        if info is not None and info.capabilities is not None
                        else None
                    ),
                    apis=frozenset(provider.apis),
                )
            )
        groups = tuple(
            (
                tuple(_candidate(t, e, i) for e in t.local),
                tuple(_candidate(t, e, i) for e in t.remote),
            )
            for i, t in enumerate(targets)
        )
        routes[model.name] = Route(
            name=model.name,
            targets=tuple(targets),
            groups=groups,
            fallback_counters=tuple(
                metrics.fallbacks.labels(model.name, f"{t.provider}/{t.model}") for t in targets
            ),
            duration=metrics.request_duration.labels(model.name),
            ttft=metrics.time_to_first_token.labels(model.name),
            checked=model.max_cost_usd is not None
            or any(t.context_window is not None or t.capabilities is not None for t in targets),
            max_cost=model.max_cost_usd,
            sticky=any(len(t.local) > 1 for t in targets),
            api_limited=any(t.apis != DEFAULT_APIS for t in targets),
        )
    for model in spec.models:
        if model.tiers is None:
            continue
        chosen = {
            tier: routes[name]
            for tier in TIER_ORDER
            if (name := getattr(model.tiers, tier)) is not None
        }
        routes[model.name] = Route(
            name=model.name,
            targets=(),
            groups=(),
            fallback_counters=(),
            duration=metrics.request_duration.labels(model.name),
            ttft=metrics.time_to_first_token.labels(model.name),
            max_cost=model.max_cost_usd,
            tiers=TierSet(
                routes=chosen,
                order=tuple(chosen),
                degrade=model.tiers.degrade,
                rules=tuple((r.system_prompt_contains, r.tier) for r in model.tiers.rules),
                decisions={
                    tier: metrics.tier_decisions.labels(model.name, tier) for tier in chosen
                },
            ),
        )

    model_objects = {model.name: _model_object(model) for model in spec.models}
    models_body = orjson.dumps({"object": "list", "data": list(model_objects.values())})
    return RoutingTable(
        route=route,
        region=region,
        routes=routes,
        endpoints=tuple(all_endpoints),
        client_keys=client_keys,
        models_body=models_body,
        model_objects=model_objects,
        config_hash=_config_hash(route, region),
        spec=route.spec,
        secrets_dir=secrets_dir,
    )


TIER_ORDER = ("economy", "standard", "premium")  # cheapest first


def redis_password(spec: RouteSpec, secrets_dir: Path) -> str | None:
    redis = spec.redis
    if redis is None or redis.password_secret_ref is None:
        return None
    return read_secret_text(redis.password_secret_ref, secrets_dir).strip()


def _model_object(model: Model) -> dict[str, Any]:
    """A served model in OpenAI's shape (id, object, created, owned_by), plus what it is
    in a ``modelroute`` member the SDKs keep as an extra field: its fallback chain
    (provider/model, in order) or its tiers (tier -> model of the route)."""
    what: dict[str, Any]
    if model.tiers is not None:
        what = {
            "tiers": {
                tier: name
                for tier in TIER_ORDER
                if (name := getattr(model.tiers, tier)) is not None
            }
        }
    else:
        what = {"targets": [f"{t.provider}/{t.model}" for t in model.targets]}
    return {
        "id": model.name,
        "object": "model",
        "created": 0,
        "owned_by": "modelroute",
        "modelroute": what,
    }


@dataclass(frozen=True, slots=True)
class _Prices:
    input: float
    output: float
    cached: float


def _price(pricing: Price | None, info: ModelInfo | None) -> _Prices | None:
    """USD per 1M tokens: the registry's prices, else ``pricing``'s; None when unpriced."""
    if info is not None and info.input is not None and info.output is not None:
        cached = info.cached_input if info.cached_input is not None else info.input
        return _Prices(info.input, info.output, cached)
    if pricing is not None:
        return _Prices(pricing.input, pricing.output, pricing.input)
    return None


def _candidate(target: Target, endpoint: Endpoint, index: int) -> Candidate:
    identity = (
        (b"x-modelroute-provider", endpoint.provider.encode()),
        (b"x-modelroute-region", endpoint.region.encode()),
        (b"x-modelroute-model", target.model.encode()),
    )
    return Candidate(target, endpoint, index, identity)


def _config_hash(route: ModelRoute, region: str) -> str:
    return hashlib.sha256(repr((route, region)).encode()).hexdigest()[:12]


def metric_model(table: RoutingTable, name: Any) -> str:
    """The label for a client-supplied model name: itself if configured, else ``other``."""
    return name if isinstance(name, str) and name in table.routes else OTHER
