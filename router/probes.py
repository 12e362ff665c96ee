"""Active health checks, and the registry that keeps health across config reloads.

:class:`HealthMonitor` owns one :class:`~.health.EndpointHealth` per endpoint,
keyed by (provider, region, URL), so a reload that keeps an endpoint keeps its
ejection history and latency estimate. For each endpoint it runs a probe loop:
a cheap ``GET <baseURL><healthCheck.path>`` (``/models`` by default), never a
paid completion, every ``interval`` — and every ``unhealthyInterval`` while the
endpoint is out of service (ejected, degraded or failing its probes), so a
passing probe can end its ejection within about a second of its recovery
(see :mod:`.health`). Loops start at a random offset within the interval and
jitter every wait by ±10 %, so many router pods do not probe an upstream in
lockstep.

A probe passes when the upstream answers with a status below 500 (a 401 or
404 still proves it is up and reachable); connection failures, timeouts and
5xx answers fail it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from modelroute.router.health import EndpointHealth, unhealthy_interval
from modelroute.router.http.client import UpstreamClient
from modelroute.router.metrics import Metrics
from modelroute.router.table import Endpoint, RoutingTable
from modelroute.spec.model import HealthCheck

log = logging.getLogger("modelroute.health")


class HealthMonitor:
    """Health state per endpoint for the current table, and its probe loops."""

    def __init__(
        self, client: UpstreamClient, metrics: Metrics, rng: random.Random | None = None
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._rng = rng or random.Random()
        self.states: dict[str, EndpointHealth] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._probe_config: HealthCheck | None = None

    def attach(self, table: RoutingTable) -> None:
        """Give every endpoint of ``table`` its health state, keeping known ones."""
        keep: dict[str, EndpointHealth] = {}
        for endpoint in table.endpoints:
            state = self.states.get(endpoint.key) or EndpointHealth(
                key=endpoint.key, provider=endpoint.provider, region=endpoint.region
            )
            keep[endpoint.key] = state
            endpoint.health = state
            self._metrics.upstream_healthy.labels(endpoint.provider, endpoint.region).set_function(
                _healthy_now(state)
            )
        for key, state in self.states.items():
            if key not in keep and not any(
                s.provider == state.provider and s.region == state.region for s in keep.values()
            ):
                with contextlib.suppress(KeyError):
                    self._metrics.upstream_healthy.remove(state.provider, state.region)
        self.states = keep
        for endpoint in table.endpoints:
            endpoint.pool = tuple(
                e.health for e in table.endpoints if e.provider == endpoint.provider
            )

    def start_probes(self, table: RoutingTable) -> None:
        """(Re)start probe loops to match ``table``; loops for kept endpoints keep running."""
        check = table.spec.resilience.health_check
        if check != self._probe_config:
            self.stop_probes()
            self._probe_config = check
        if not check.enabled:
            return
        wanted = {endpoint.key: endpoint for endpoint in table.endpoints}
        for key in list(self._probes):
            if key not in wanted:
                self._probes.pop(key).cancel()
        loop = asyncio.get_running_loop()
        for key, endpoint in wanted.items():
            task = self._probes.get(key)
            if task is None or task.done():
                self._probes[key] = loop.create_task(self._probe_loop(endpoint, check))

    def stop_probes(self) -> None:
        for task in self._probes.values():
            task.cancel()
        self._probes.clear()

    async def close(self) -> None:
        tasks = list(self._probes.values())
        self.stop_probes()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe_loop(self, endpoint: Endpoint, check: HealthCheck) -> None:
        head = (
            b"GET %s%s%s HTTP/1.1\r\nhost: %s\r\n%saccept: application/json\r\n"
            b"user-agent: modelroute-health\r\ncontent-length: 0\r\n\r\n"
            % (
                endpoint.path_prefix.encode(),
                check.path.encode(),
                endpoint.query.encode(),
                endpoint.origin.host_header,
                endpoint.auth_header,
            )
        )
        health = endpoint.health
        fast = unhealthy_interval(check)
        last = time.monotonic()
        due = last + self._rng.uniform(0, check.interval)
        while True:
            # The next probe after `interval`, or after `unhealthyInterval` while the
            # endpoint is out of service (it may go out at any moment: look every `fast`).
            soon = last + fast * self._rng.uniform(0.9, 1.1)
            while True:
                now = time.monotonic()
                until = min(soon, due) if health.out_of_service(now) else due
                if now >= until:
                    break
                await asyncio.sleep(min(until, now + fast) - now)
            ok = await probe(self._client, endpoint, head, check.timeout)
            last = time.monotonic()
            health.probed(last, ok, check)
            due = last + check.interval * self._rng.uniform(0.9, 1.1)


async def probe(client: UpstreamClient, endpoint: Endpoint, head: bytes, timeout: float) -> bool:
    """One health probe; True if the upstream answered below 500 in time."""
    response = None
    try:
        async with asyncio.timeout(timeout):
            response = await client.request(endpoint.origin, head, b"", connect_timeout=timeout)
            await response.read()
    except asyncio.CancelledError:
        if response is not None:
            response.abort()
        raise
    except Exception as exc:  # any failure to get an answer fails the probe
        if response is not None:
            response.abort()
        log.debug(
            "probe failed provider=%s region=%s error=%r", endpoint.provider, endpoint.region, exc
        )
        return False
    response.close()
    return response.status < 500


def _healthy_now(state: EndpointHealth) -> Callable[[], float]:
    def value() -> float:
        now = time.monotonic()
        return 1.0 if state.usable(now) and state.state(now) != "degraded" else 0.0

    return value
