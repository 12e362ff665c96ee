"""Prometheus metrics: names, labels and buckets are part of modelroute's API.

Label values are bounded by construction: model, provider and region names
come from the ModelRoute, never from the client (an unknown model is counted
as ``other``), and status codes are a small set. Children are resolved once
(per route table) and cached, because ``.labels(...)`` costs about a
microsecond per call on the hot path.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from modelroute import __version__

# Tens of milliseconds (cached or tiny answers) to two minutes (long generations),
# dense around the 1-3 s where p99 targets for autoscaling usually sit.
LATENCY_BUCKETS = (
    0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0,
    7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
)  # fmt: skip

OTHER = "other"

# The *_created series double the exposition and no dashboard or alert uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric the router exports, in its own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        Gauge(
            "modelroute_build_info",
            "modelroute version running in this process.",
            ["version"],
            registry=registry,
        ).labels(__version__).set(1)
        self.request_duration = Histogram(
            "modelroute_request_duration_seconds",
            "Time from request received to response complete, as the client sees it.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "modelroute_time_to_first_token_seconds",
            "Time from request received to the first content byte sent (streaming).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "modelroute_requests",
            "Requests answered, by client-facing model and HTTP status.",
            ["model", "code"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "modelroute_requests_in_flight",
            "Requests being served right now.",
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "modelroute_upstream_request_duration_seconds",
            "Time of one upstream attempt, from sending to the complete answer.",
            ["provider", "region"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_attempts = Counter(
            "modelroute_upstream_attempts",
            "Upstream attempts by outcome (ok, connect-failure, timeout, 5xx, 429, 4xx).",
            ["provider", "region", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "modelroute_tokens",
            "Tokens reported by upstreams in usage, by direction (input, output, and "
            "cached_input: the part of input served from the provider's prompt cache).",
            ["provider", "model", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "modelroute_cost_usd",
            "Cost in USD of the tokens upstreams reported, at the route's pricing.",
            ["provider", "model"],
            registry=registry,
        )
        self.stream_interrupted = Counter(
            "modelroute_stream_interrupted",
            "Streams ended with an error event after content had reached the client.",
            ["provider", "region"],
            registry=registry,
        )
        self.upstream_healthy = Gauge(
            "modelroute_upstream_healthy",
            "1 if the endpoint may take requests now (not ejected, cooling down or failing probes).",
            ["provider", "region"],
            registry=registry,
        )
        self.ejections = Counter(
            "modelroute_upstream_ejections",
            "Endpoints ejected by outlier detection.",
            ["provider", "region"],
            registry=registry,
        )
        self.failovers = Counter(
            "modelroute_failovers",
            "Attempts that moved a request from one region to another.",
            ["from_region", "to_region"],
            registry=registry,
        )
        self.tier_decisions = Counter(
            "modelroute_tier_decisions",
            "Requests to a tiered model, by the tier chosen for them.",
            ["model", "tier"],
            registry=registry,
        )
        self.degraded = Counter(
            "modelroute_degraded",
            "Requests answered by a lower tier than chosen, because the chosen one could not.",
            ["model", "from_tier", "to_tier"],
            registry=registry,
        )
        self.skipped_targets = Counter(
            "modelroute_skipped_targets",
            "Targets skipped before any call, by why (context-window, tools, vision, "
            "json-schema, reasoning, cost-ceiling, context-length-exceeded).",
            ["model", "target", "reason"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "modelroute_fallbacks",
            "Requests answered by a target other than the first of the model's chain.",
            ["model", "target"],
            registry=registry,
        )
        self.retries = Counter(
            "modelroute_retries",
            "Upstream attempts after the first one of a request.",
            registry=registry,
        )
        self.retries_refused = Counter(
            "modelroute_retries_refused_by_budget",
            "Retries not made because the retry budget was spent.",
            registry=registry,
        )
        self.panics = Counter(
            "modelroute_panic_attempts",
            "Attempts on an unavailable endpoint because no candidate was available (panic mode).",
            registry=registry,
        )
        self.hedges = Counter(
            "modelroute_hedges",
            "Hedged attempts sent because the first one was slow.",
            registry=registry,
        )
        self.cache_lookups = Counter(
            "modelroute_cache_lookups",
            "Response cache lookups by result (hit, miss); only when spec.cache is enabled.",
            ["result"],
            registry=registry,
        )
        self.cache_hits = self.cache_lookups.labels("hit")
        self.cache_misses = self.cache_lookups.labels("miss")
        self.cache_tier_hits = Counter(
            "modelroute_cache_tier_hits",
            "Cache hits by where the answer was found (memory, redis).",
            ["tier"],
            registry=registry,
        )
        self.cache_bytes = Gauge(
            "modelroute_cache_memory_bytes",
            "Bytes of answers held in this router's memory cache.",
            registry=registry,
        )
        self.cache_saved = Counter(
            "modelroute_cache_saved_usd",
            "USD not spent because the cache answered (what the cached answer cost).",
            ["model"],
            registry=registry,
        )
        self.client_requests = Counter(
            "modelroute_client_requests",
            "Requests by client key name (spec.auth.clients, or key-<hash>) and HTTP status.",
            ["client", "code"],
            registry=registry,
        )
        self.client_cost = Counter(
            "modelroute_client_cost_usd",
            "Cost in USD of the answers each client key got.",
            ["client"],
            registry=registry,
        )
        self.budget_spent = Gauge(
            "modelroute_budget_spent_usd",
            "USD spent in the budget's current window, as last seen by this router.",
            ["budget"],
            registry=registry,
        )
        self.budget_remaining = Gauge(
            "modelroute_budget_remaining_usd",
            "USD neither spent nor reserved in the budget's current window, as last seen.",
            ["budget"],
            registry=registry,
        )
        self.budget_reservations = Gauge(
            "modelroute_budget_reservations",
            "Reservations this router holds against the budget (requests in flight).",
            ["budget"],
            registry=registry,
        )
        self.budget_refusals = Counter(
            "modelroute_budget_refusals",
            "Requests refused (429) or degraded because a budget was spent, by outcome.",
            ["budget", "outcome"],
            registry=registry,
        )
        self.budget_clamped = Counter(
            "modelroute_budget_clamped",
            "Requests whose max_tokens was lowered to fit what was left of a budget.",
            registry=registry,
        )
        self.rate_limited = Counter(
            "modelroute_rate_limited",
            "Requests answered 429 by a client rate limit.",
            ["limit", "client"],
            registry=registry,
        )
        self.redis_up = Gauge(
            "modelroute_redis_up",
            "1 while Redis answers (circuit breaker closed); 0 while this router works from "
            "its own state.",
            registry=registry,
        )
        self.redis_duration = Histogram(
            "modelroute_redis_call_duration_seconds",
            "Time of one Redis call.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=registry,
        )
        self.redis_errors = Counter(
            "modelroute_redis_errors",
            "Redis calls that failed, by kind (timeout, connect, protocol, closed, "
            "breaker-open, error).",
            ["kind"],
            registry=registry,
        )
        self.config_reloads = Counter(
            "modelroute_config_reloads",
            "Config reloads by result (ok, invalid).",
            ["result"],
            registry=registry,
        )
        self._codes: dict[tuple[str, int], Counter] = {}
        self._failovers: dict[tuple[str, str], Counter] = {}

    def count_failover(self, source: str, destination: str) -> None:
        child = self._failovers.get((source, destination))
        if child is None:
            child = self._failovers[(source, destination)] = self.failovers.labels(
                source, destination
            )
        child.inc()

    def count_request(self, model: str, code: int) -> None:
        child = self._codes.get((model, code))
        if child is None:
            child = self._codes[(model, code)] = self.requests.labels(model, str(code))
        child.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
