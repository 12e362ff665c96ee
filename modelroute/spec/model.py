"""The ModelRoute resource: every field users write, its default and its meaning.

This is the single source of truth for the spec. The router loads its config
through it, the operator validates and renders through it, and the CRD's
OpenAPI schema is generated from it (see :mod:`modelroute.operator.crd`). Field
docs here become ``kubectl explain`` text, so they are written for users.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from modelroute.spec.schema import ByteSize, Duration, spec_field

GROUP = "modelroute.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelRoute"
PLURAL = "modelroutes"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MODEL_NAME = r"^[^\s]+$"
ENV_VAR = r"^[A-Za-z_][A-Za-z0-9_]*$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"

RetryOn = Literal["connect-failure", "reset", "timeout", "5xx", "429"]
Capability = Literal["tools", "vision", "jsonSchema", "reasoning"]
Tier = Literal["economy", "standard", "premium"]
ApiName = Literal["chat", "completions", "embeddings", "responses", "messages"]


@dataclass(frozen=True, slots=True)
class Region:
    name: str = spec_field(
        doc="Region name, matched against the node label topology.kubernetes.io/region.",
        pattern=DNS_LABEL,
        max_length=40,
    )


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    name: str = spec_field(doc="Name of a Secret in the ModelRoute's namespace.", pattern=DNS_LABEL)
    key: str = spec_field(doc="Key inside the Secret.", pattern=r"^[-._a-zA-Z0-9]+$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    region: str = spec_field(
        doc="Region this endpoint serves; must be one of spec.regions.", max_length=40
    )
    base_url: str = spec_field(
        key="baseURL",
        doc="OpenAI-compatible base URL including the version path, e.g. https://api.deepseek.com/v1.",
        pattern=r"^https?://[^\s/]+",
    )
    api_key_secret_ref: SecretKeyRef | None = spec_field(
        None,
        doc="Secret holding the API key; mounted into router pods as a file.",
    )
    api_key_env: str | None = spec_field(
        None,
        doc="Environment variable holding the API key (for local runs).",
        pattern=ENV_VAR,
    )


@dataclass(frozen=True, slots=True)
class Price:
    input: float = spec_field(doc="USD per 1M input (prompt) tokens.", minimum=0)
    output: float = spec_field(doc="USD per 1M output (completion) tokens.", minimum=0)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the router knows of one upstream model: prices, limits, capabilities."""

    input: float | None = spec_field(None, doc="USD per 1M input (prompt) tokens.", minimum=0)
    output: float | None = spec_field(
        None, doc="USD per 1M output (completion) tokens.", minimum=0
    )
    cached_input: float | None = spec_field(
        None,
        doc="USD per 1M prompt tokens served from the provider's prompt cache (reported in "
        "usage.prompt_tokens_details.cached_tokens); default: the input price.",
        minimum=0,
    )
    context_window: int | None = spec_field(
        None,
        doc="Tokens of prompt plus output the model accepts. A request estimated to need "
        "more skips this target before any call.",
        minimum=1,
    )
    max_output_tokens: int | None = spec_field(
        None,
        doc="Most completion tokens the model produces; the worst case of a request that "
        "sets no max_tokens, for context and cost checks.",
        minimum=1,
    )
    capabilities: tuple[Capability, ...] | None = spec_field(
        None,
        doc="Everything the model supports, of tools, vision, jsonSchema and reasoning. A "
        "request needing one it lacks skips this target. Unset: assumed to support all.",
        max_items=4,
    )


@dataclass(frozen=True, slots=True)
class Provider:
    name: str = spec_field(
        doc="Provider name, referenced by model targets.", pattern=DNS_LABEL, max_length=63
    )
    endpoints: tuple[Endpoint, ...] = spec_field(
        doc="Where this provider is reached, per region.", min_items=1, max_items=16
    )
    pricing: Mapping[str, Price] = spec_field(
        {}, doc="Price per upstream model name, used for cost metrics and budgets."
    )
    models: Mapping[str, ModelInfo] = spec_field(
        {},
        doc="Model registry: per upstream model name, its prices, context window, output "
        "limit and capabilities. Prices here take precedence over pricing.",
    )
    apis: tuple[ApiName, ...] = spec_field(
        ["chat", "completions", "embeddings"],
        doc="APIs the provider serves natively: chat, completions, embeddings (OpenAI's), "
        "responses (OpenAI's Responses API), messages (Anthropic's Messages API, with "
        "x-api-key auth). Responses and Messages requests go to a provider that serves "
        "them as they are, and are translated to chat for one that does not.",
        min_items=1,
        max_items=5,
    )


@dataclass(frozen=True, slots=True)
class Target:
    provider: str = spec_field(doc="Name of a provider in spec.providers.", max_length=63)
    model: str = spec_field(
        doc="Model name the provider expects.", pattern=MODEL_NAME, max_length=256
    )


@dataclass(frozen=True, slots=True)
class TierRule:
    system_prompt_contains: str = spec_field(
        doc="Text that, found in a request's system prompt, selects the tier.",
        max_length=1024,
    )
    tier: Tier = spec_field(doc="The tier such a request gets.")


@dataclass(frozen=True, slots=True)
class Tiers:
    economy: str | None = spec_field(
        None, doc="Model (of spec.models) for simple requests.", max_length=256
    )
    standard: str = spec_field(
        doc="Model (of spec.models) for ordinary requests, and where the classifier sends "
        "requests it is unsure of.",
        max_length=256,
    )
    premium: str | None = spec_field(
        None, doc="Model (of spec.models) for hard requests.", max_length=256
    )
    degrade: bool = spec_field(
        True,
        doc="When every target of the chosen tier is out of service or fails, answer from "
        "the next tier down (x-modelroute-degraded says so) instead of a 503.",
    )
    rules: tuple[TierRule, ...] = spec_field(
        [], doc="Rules checked before the classifier; the first that matches wins.", max_items=32
    )


@dataclass(frozen=True, slots=True)
class Model:
    name: str = spec_field(
        doc="Model name clients send in requests.", pattern=MODEL_NAME, max_length=256
    )
    targets: tuple[Target, ...] = spec_field(
        [], doc="Fallback chain: targets are tried in order.", max_items=8
    )
    tiers: Tiers | None = spec_field(
        None,
        doc="Instead of targets: tiers of other models, one picked per request by its "
        "complexity (tier routing).",
    )
    max_cost_usd: float | None = spec_field(
        None,
        key="maxCostUSD",
        doc="Default per-request cost ceiling (USD): targets whose worst-case cost exceeds "
        "it are skipped. The x-modelroute-max-cost-usd request header overrides it.",
        minimum=0,
    )
    output_allowance: int = spec_field(
        4096,
        doc="Output tokens a budget or a token rate limit reserves for a request of this model "
        "that sets no max_tokens; such a request is sent upstream with this max_tokens, so "
        "what it spends never exceeds what was reserved.",
        minimum=1,
    )


@dataclass(frozen=True, slots=True)
class Backoff:
    base: Duration = spec_field("100ms", doc="First backoff before retrying the same endpoint.")
    max: Duration = spec_field("2s", doc="Upper bound of the jittered exponential backoff.")


@dataclass(frozen=True, slots=True)
class Retries:
    attempts: int = spec_field(
        2, doc="Extra attempts after the first one, across all candidates.", minimum=0, maximum=10
    )
    retry_on: tuple[RetryOn, ...] = spec_field(
        ["connect-failure", "reset", "timeout", "5xx", "429"],
        doc="Failures that move a request to the next candidate. `reset` is a connection "
        "that died after the request was sent: the upstream may have done (and billed) the "
        "work, so leave it out to never send a request twice.",
        max_items=5,
    )
    backoff: Backoff = spec_field({}, doc="Backoff between attempts on the same endpoint.")
    budget_percent: int = spec_field(
        20,
        doc="Retry budget: attempts in flight on an endpoint that already failed the same "
        "request (after a timeout, reset or 5xx) may be at most this share of requests in "
        "flight. Moving on to a candidate the request has not tried is never limited.",
        minimum=0,
        maximum=100,
    )
    min_retry_concurrency: int = spec_field(
        3, doc="Retries in flight always allowed, whatever the budget says.", minimum=0
    )
    same_target_wait: Duration = spec_field(
        "2s",
        doc="After a transient failure (a 5xx, or a 429 whose Retry-After is at most this), "
        "the target that failed gets one more attempt before the request falls to the next "
        "target of the chain: its next endpoint, or the same endpoint once its backoff or "
        "Retry-After has passed, if that is no longer than this. A target known to be down "
        "(ejected, degraded, timed out, refusing connections, a longer Retry-After) is left "
        "at once. 0s moves to the next target at once.",
    )


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: Duration = spec_field("2s", doc="Time to open a connection to an upstream.")
    first_token: Duration = spec_field(
        "30s",
        doc="Time to the first token: a stream's first content chunk, or a whole "
        "non-streaming answer. Past it the attempt fails over.",
    )
    total: Duration = spec_field("120s", doc="Time for a whole upstream attempt.")
    stream_idle: Duration = spec_field(
        "10s",
        doc="Longest gap between a stream's bytes after its first content before the "
        "stream is cut with an error event (Envoy's stream_idle_timeout).",
    )


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    consecutive_errors: int = spec_field(
        5, doc="Consecutive failures that eject an endpoint.", minimum=1
    )
    base_ejection_time: Duration = spec_field(
        "30s", doc="Ejection time, multiplied by the number of ejections so far."
    )
    max_ejection_time: Duration = spec_field("300s", doc="Cap on one ejection's time.")
    max_ejection_percent: int = spec_field(
        50, doc="Most endpoints of a provider that may be ejected at once.", minimum=0, maximum=100
    )


@dataclass(frozen=True, slots=True)
class RateLimit:
    default_cooldown: Duration = spec_field(
        "1s", doc="Cooldown after a 429 that carries no Retry-After."
    )
    max_cooldown: Duration = spec_field(
        "60s", doc="Cap on a cooldown; Retry-After is honoured up to this."
    )


@dataclass(frozen=True, slots=True)
class HealthCheck:
    enabled: bool = spec_field(True, doc="Probe every endpoint actively.")
    path: str = spec_field(
        "/models",
        doc="Path probed under each endpoint's baseURL (GET; never a paid call).",
        pattern=r"^/",
    )
    interval: Duration = spec_field("10s", doc="Time between probes of one endpoint.")
    unhealthy_interval: Duration = spec_field(
        "1s",
        doc="Time between probes of an endpoint that is out of service (ejected, degraded or "
        "failing its probes; never longer than interval). A passing probe ends an ejection "
        "into half-open: one trial request, then full traffic.",
    )
    timeout: Duration = spec_field("2s", doc="Time a probe may take.")
    unhealthy_threshold: int = spec_field(
        3, doc="Failed probes that mark an endpoint unhealthy.", minimum=1
    )
    healthy_threshold: int = spec_field(
        2, doc="Passed probes that mark it healthy again.", minimum=1
    )


@dataclass(frozen=True, slots=True)
class Hedging:
    enabled: bool = spec_field(False, doc="Send a second request when the first is slow.")
    after: str = spec_field(
        "p95",
        doc="When to hedge: a latency percentile of the endpoint (p50..p99) or a duration.",
        pattern=r"^(p[5-9][0-9]|\d+(\.\d+)?(ms|s))$",
    )


@dataclass(frozen=True, slots=True)
class Resilience:
    retries: Retries = spec_field({}, doc="Retry policy.")
    timeouts: Timeouts = spec_field({}, doc="Per-attempt timeouts.")
    outlier_detection: OutlierDetection = spec_field({}, doc="Passive health from live traffic.")
    health_check: HealthCheck = spec_field({}, doc="Active health probes.")
    hedging: Hedging = spec_field({}, doc="Hedged requests for non-streaming calls.")
    rate_limit: RateLimit = spec_field({}, doc="How 429 answers cool an endpoint down.")


@dataclass(frozen=True, slots=True)
class Autoscaling:
    min_replicas: int = spec_field(2, doc="Fewest router pods per region.", minimum=1)
    max_replicas: int = spec_field(10, doc="Most router pods per region.", minimum=1)
    target_p99: Duration = spec_field("2s", doc="p99 latency per pod above which to scale out.")
    metric: Literal["latency", "ttft"] = spec_field(
        "latency", doc="Which p99 drives scaling: total latency or time to first token."
    )
    target_in_flight: int = spec_field(
        64, doc="In-flight requests per pod above which to scale out.", minimum=1
    )
    scale_down_stabilization: Duration = spec_field(
        "300s", doc="How long a lower recommendation must hold before pods are removed."
    )


@dataclass(frozen=True, slots=True)
class Cache:
    enabled: bool = spec_field(
        False,
        doc="Answer repeated identical requests (streaming too) from cache: each router's "
        "memory first, then Redis when spec.redis is set (shared by every replica).",
    )
    ttl: Duration = spec_field("1h", doc="How long a cached answer stays valid.")
    max_entries: int = spec_field(
        10000, doc="Most answers kept in each router pod's memory.", minimum=1
    )
    max_bytes: ByteSize = spec_field(
        "64Mi", doc="Most bytes of answers kept in each router pod's memory."
    )
    policy: Literal["deterministic", "always"] = spec_field(
        "deterministic",
        doc="Which requests are cached: deterministic = only those with temperature 0 or "
        "the header x-modelroute-cache: use; always = every request. Never one with n > 1.",
    )


@dataclass(frozen=True, slots=True)
class ClientKey:
    name: str = spec_field(
        doc="Who holds the key (a team or an application): the label of its metrics, and "
        "what budgets, rate limits and the cache's tenant scope name. Never the key itself.",
        pattern=DNS_LABEL,
        max_length=63,
    )
    key_secret_ref: SecretKeyRef = spec_field(
        doc="Secret whose key holds this client's API keys, one per line (two while rotating)."
    )


@dataclass(frozen=True, slots=True)
class ClientAuth:
    keys_secret_ref: SecretKeyRef | None = spec_field(
        None,
        doc="Secret whose key holds accepted client API keys, one per line; each is named "
        "key-<first 8 hex digits of its SHA-256> in metrics, budgets and limits.",
    )
    clients: tuple[ClientKey, ...] = spec_field(
        [], doc="Named client keys: one entry per team or application.", max_items=256
    )


@dataclass(frozen=True, slots=True)
class RedisTLS:
    ca_secret_ref: SecretKeyRef | None = spec_field(
        None, doc="Secret holding the PEM CA bundle that signs Redis's certificate; "
        "default: the system's CAs."
    )
    server_name: str | None = spec_field(
        None,
        doc="Name to verify Redis's certificate against, when not the URL's host.",
        max_length=253,
    )


@dataclass(frozen=True, slots=True)
class Redis:
    url: str = spec_field(
        doc="Where Redis (or Valkey) is: redis://host:port/db, or rediss:// for TLS.",
        pattern=r"^rediss?://[^\s/@]+(/[0-9]{1,2})?$",
        max_length=512,
    )
    username: str | None = spec_field(None, doc="ACL user name; unset: the default user.")
    password_secret_ref: SecretKeyRef | None = spec_field(
        None, doc="Secret holding Redis's password; mounted into router pods as a file."
    )
    tls: RedisTLS | None = spec_field(None, doc="TLS settings (rediss:// URLs).")
    key_prefix: str | None = spec_field(
        None,
        doc="Prefix of every key the route writes; default modelroute:<namespace>/<route>: "
        "(routes sharing one Redis never share state unless they set the same prefix).",
        max_length=128,
    )
    timeout: Duration = spec_field(
        "50ms",
        doc="Longest a request waits for Redis; slower calls count as failures, and "
        "failures open a circuit breaker that answers from per-pod state.",
    )
    connect_timeout: Duration = spec_field("250ms", doc="Longest a connection attempt may take.")
    lease_percent: float = spec_field(
        2,
        doc="Share of each budget every router pod reserves in advance (percent of the limit) "
        "and spends from while Redis is unreachable: the most a budget can be overspent "
        "during an outage is pods x this share.",
        minimum=0,
        maximum=50,
    )


@dataclass(frozen=True, slots=True)
class Budget:
    name: str = spec_field(
        doc="Budget name, used in metrics and in the message a refused client gets.",
        pattern=DNS_LABEL,
        max_length=63,
    )
    limit_usd: float = spec_field(
        key="limitUSD", doc="Most US dollars spent per window.", minimum=0
    )
    window: Literal["hour", "day", "month"] = spec_field(
        "day", doc="Window the limit applies to, in UTC: hour, day or calendar month."
    )
    client: str | None = spec_field(
        None,
        doc="Only this client's requests count (a name of spec.auth.clients); unset: all.",
        max_length=63,
    )
    model: str | None = spec_field(
        None,
        doc="Only requests for this model count (a name of spec.models); unset: all.",
        max_length=256,
    )
    on_exceeded: Literal["reject", "degrade"] = spec_field(
        "reject",
        doc="When it is spent: reject answers 429 with Retry-After until the window resets; "
        "degrade answers with degradeTo (or the economy tier of a tiered model) instead.",
    )
    degrade_to: str | None = spec_field(
        None, doc="Model (of spec.models) that answers once the budget is spent.", max_length=256
    )
    clamp_max_tokens: bool = spec_field(
        True,
        doc="When less remains than a request's worst case, lower its max_tokens to what "
        "remains instead of refusing it.",
    )


@dataclass(frozen=True, slots=True)
class ClientRateLimit:
    name: str = spec_field(doc="Rate limit name, used in metrics.", pattern=DNS_LABEL, max_length=63)
    client: str | None = spec_field(
        None,
        doc="The client it limits (a name of spec.auth.clients); unset: each client key "
        "separately, with its own allowance.",
        max_length=63,
    )
    model: str | None = spec_field(
        None,
        doc="Only requests for this model count (a name of spec.models); unset: all.",
        max_length=256,
    )
    requests_per_minute: int | None = spec_field(
        None, doc="Most requests per minute.", minimum=1
    )
    tokens_per_minute: int | None = spec_field(
        None,
        doc="Most tokens (prompt estimate plus max_tokens, corrected by usage) per minute.",
        minimum=1,
    )


@dataclass(frozen=True, slots=True)
class Cors:
    allowed_origins: tuple[str, ...] = spec_field(
        doc="Origins (scheme://host[:port]) whose pages may call the router from a browser; "
        "\"*\" allows any origin (then set auth: a page on any site could spend).",
        min_items=1,
        max_items=64,
    )
    max_age: Duration = spec_field("10m", doc="How long browsers may cache a preflight answer.")


@dataclass(frozen=True, slots=True)
class Server:
    cors: Cors | None = spec_field(
        None,
        doc="Let browser pages of these origins call the router (CORS); off when unset.",
    )
    max_request_body: ByteSize = spec_field(
        "10Mi", doc="Largest request body accepted; larger ones get 413."
    )
    shutdown_delay: Duration = spec_field(
        "5s",
        doc="On SIGTERM, keep serving new connections this long while endpoints update.",
    )
    drain_timeout: Duration = spec_field(
        "60s", doc="After the delay, how long in-flight requests and streams may take to finish."
    )
    access_log: bool = spec_field(False, doc="Log one line per request.")
    max_connections: int = spec_field(
        10000,
        doc="Client connections one router accepts at once; more are answered 503 and closed.",
        minimum=1,
    )
    client_body_timeout: Duration = spec_field(
        "30s",
        doc="Longest pause while a request's head or body arrives (nginx's "
        "client_body_timeout); the request gets 408.",
    )
    min_body_rate: ByteSize = spec_field(
        "1Ki",
        doc="Bytes per second a request's head and body must average once it has taken "
        "longer than clientBodyTimeout; slower uploads get 408.",
    )


@dataclass(frozen=True, slots=True)
class Resources:
    # No CPU limit by default: CFS throttling adds latency to exactly the requests
    # a router exists to keep fast; memory is limited so a leak cannot spread.
    requests: Mapping[str, str] = spec_field(
        {"cpu": "250m", "memory": "128Mi"}, doc="Resource requests (cpu, memory)."
    )
    limits: Mapping[str, str] = spec_field(
        {"memory": "512Mi"}, doc="Resource limits (cpu, memory); no CPU limit by default."
    )


@dataclass(frozen=True, slots=True)
class RouteSpec:
    regions: tuple[Region, ...] = spec_field(
        doc="Regions with a router Deployment.", min_items=1, max_items=16
    )
    providers: tuple[Provider, ...] = spec_field(
        doc="Upstream OpenAI-compatible APIs.", min_items=1, max_items=32
    )
    models: tuple[Model, ...] = spec_field(
        doc="Model names clients may request.", min_items=1, max_items=64
    )
    resilience: Resilience = spec_field({}, doc="Retries, timeouts and upstream health.")
    autoscaling: Autoscaling = spec_field({}, doc="Router pods per region.")
    cache: Cache = spec_field({}, doc="Response cache.")
    auth: ClientAuth | None = spec_field(None, doc="Client API keys; omit to accept any client.")
    redis: Redis | None = spec_field(
        None,
        doc="Redis shared by every router of the route for budgets, rate limits and the "
        "cache; unset: each router pod keeps its own.",
    )
    budgets: tuple[Budget, ...] = spec_field(
        [], doc="Spending limits in US dollars.", max_items=64
    )
    rate_limits: tuple[ClientRateLimit, ...] = spec_field(
        [], doc="Requests and tokens per minute per client key.", max_items=64
    )
    server: Server = spec_field({}, doc="Router process settings.")
    resources: Resources = spec_field({}, doc="Compute resources of each router container.")

    def provider(self, name: str) -> Provider:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A parsed, validated ModelRoute manifest."""

    name: str
    namespace: str | None
    spec: RouteSpec
