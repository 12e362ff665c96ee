"""The operator's own Prometheus metrics, served at ``/metrics`` on its admin port.

What an on-call engineer asks of a controller, one metric each:

* is it working, and how fast? ``modelroute_operator_reconciles_total{result}``
  (``ok``, ``invalid_spec``, ``name_conflict``, ``reconcile_error``,
  ``no_served_region``, ``failed`` for a bug) and
  ``modelroute_operator_reconcile_duration_seconds``;
* what does it cost the API server? ``modelroute_operator_api_requests_total``
  by verb, resource and HTTP status (0: no answer), which also counts refusals
  (403, 409, 422) by kind;
* how are the routes? ``modelroute_operator_routes{ready, reason}``, from the
  last reconcile of each route;
* is this replica the one writing? ``modelroute_operator_leader`` (1 or 0), and
  ``modelroute_operator_workqueue_depth``.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from modelroute.operator.reconcile import Outcome

RESULTS = {
    "": "ok",
    "AllRegionsReady": "ok",
    "RegionsNotReady": "ok",
    "InvalidSpec": "invalid_spec",
    "NameConflict": "name_conflict",
    "ReconcileError": "reconcile_error",
    "NoServedRegion": "no_served_region",
}
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Routes(Collector):
    def __init__(self, conditions: Callable[[], Tally[tuple[str, str]]]) -> None:
        self._conditions = conditions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelroute_operator_routes",
            "ModelRoutes by their Ready condition's status and reason, as last reconciled.",
            labels=["ready", "reason"],
        )
        for (ready, reason), count in sorted(self._conditions().items()):
            family.add_metric([ready, reason], count)
        yield family


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "modelroute_operator_reconciles",
            "Reconciles of a ModelRoute, by result.",
            ["result"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "modelroute_operator_reconcile_duration_seconds",
            "Time one reconcile of one ModelRoute took, API calls included.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "modelroute_operator_api_requests",
            "Requests to the Kubernetes API, by verb, resource and HTTP status (0: no answer).",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "modelroute_operator_leader",
            "1 while this replica holds the leader-election Lease and reconciles.",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "modelroute_operator_workqueue_depth",
            "Routes waiting to be reconciled (now or after a backoff or resync delay).",
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._routes: dict[str, tuple[str, str]] = {}
        self.registry.register(_Routes(self._route_tally))

    def count_request(self, verb: str, resource: str, code: int) -> None:
        self.requests.labels(verb, resource, str(code)).inc()

    def reconciled(self, route: str, outcome: Outcome | None, seconds: float) -> None:
        """Record one reconcile (``outcome`` None: it raised)."""
        self.duration.observe(seconds)
        if outcome is None:
            self.reconciles.labels("failed").inc()
            return
        self.reconciles.labels(RESULTS.get(outcome.reason, "ok")).inc()
        ready = next(
            (c for c in outcome.status.get("conditions") or [] if c.get("type") == "Ready"), None
        )
        if ready is not None:
            with self._lock:
                self._routes[route] = (str(ready["status"]), str(ready["reason"]))

    def route_gone(self, route: str) -> None:
        with self._lock:
            self._routes.pop(route, None)

    def forget_routes(self) -> None:
        with self._lock:
            self._routes.clear()

    def _route_tally(self) -> Tally[tuple[str, str]]:
        with self._lock:
            return Tally(self._routes.values())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
