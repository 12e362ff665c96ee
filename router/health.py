"""Upstream health: one state machine per endpoint, fed by three inputs.

* **Passive outlier detection** (Envoy's semantics): ``consecutiveErrors``
  failures in a row on live traffic eject an endpoint for
  ``baseEjectionTime`` times the number of times it was ejected, capped at
  ``maxEjectionTime``. No more than ``maxEjectionPercent`` of a provider's
  endpoints are ejected at once (but always at least one may be); one that
  reaches the threshold past that cap is *degraded* instead: still in
  service, but the plan tries it only after every other candidate of the
  chain (see :mod:`.plan`), so the cap never keeps a failing endpoint in front.
* **Rate limits**: a 429 puts the endpoint (one provider key in one region)
  in a cooldown of the time it asked for — ``Retry-After`` is a floor, capped
  by ``rateLimit.maxCooldown`` — without counting as an error. Only a 429 to
  a request sent after the endpoint went out of service (the half-open trial,
  or a request right after the cooldown) lengthens it, by doubling; the 429s
  of a burst that was already in flight when the first one came say nothing
  new and count once.
* **Active probes** (see :mod:`.probes`): ``unhealthyThreshold`` failed probes
  mark the endpoint unhealthy, ``healthyThreshold`` passed ones bring it back.
  Out-of-service endpoints are probed every ``unhealthyInterval``, and a
  passing probe ends an ejection, a degradation or the unhealthy mark into
  half-open (Envoy's ``successful_active_health_check_uneject_host``), so an
  upstream that comes back serves again within about a second. When the trial
  that follows fails anyway (the probe path works, completions do not), the
  next probe-ended ejection waits twice as long (1 s, 2 s, 4 s, ...), until a
  probe fails or a request succeeds.

An endpoint that comes back does not get the whole backlog at once: it is
*half-open* and admits one trial request; success restores it, failure
ejects it again for longer. Answers to attempts sent before the endpoint went
out of service (each :class:`Admission` remembers when it was let through)
neither restore it nor lengthen its ejection or cooldown.

Everything here is a pure function of the calls made and the ``now`` passed
in, so the rules are tested without sockets or sleeps.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from modelroute.spec.model import HealthCheck, OutlierDetection, RateLimit

log = logging.getLogger("modelroute.health")

__all__ = [
    "DENIED",
    "Admission",
    "AdmissionKind",
    "EndpointHealth",
    "may_eject",
    "unhealthy_interval",
]


class AdmissionKind(enum.Enum):
    DENIED = 0
    ADMITTED = 1
    TRIAL = 2  # the one request a half-open endpoint lets through
    PANIC = 3  # no candidate was available; tried anyway


class Admission:
    """How and when an attempt was let through; the attempt carries it to its outcome."""

    __slots__ = ("at", "kind")

    def __init__(self, kind: AdmissionKind, at: float) -> None:
        self.kind = kind
        self.at = at  # when it was let through (and so sent): older answers say nothing new

    def __bool__(self) -> bool:
        return self.kind is not AdmissionKind.DENIED

    @property
    def trial(self) -> bool:
        return self.kind is AdmissionKind.TRIAL or self.kind is AdmissionKind.PANIC

    def __repr__(self) -> str:
        return f"Admission({self.kind.name}, at={self.at:.3f})"


DENIED = Admission(AdmissionKind.DENIED, float("-inf"))

EWMA_WEIGHT = 0.2  # weight of the newest latency sample
RECENT_SAMPLES = 200  # latencies kept for percentile-based hedging


@dataclass(slots=True, eq=False)
class EndpointHealth:
    """What the router knows about one endpoint's health, and its rules."""

    key: str
    provider: str
    region: str
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    degraded: bool = False  # the current ejection was past the cap: still tried, last
    out_since: float = float("-inf")  # when it last went out of service (ejected, cooling)
    cooldown: float = 0.0  # length of the current or last cooldown
    cooldown_until: float = 0.0
    cooldown_repeated: bool = False  # the cooldown was lengthened by a repeated 429
    half_open: bool = False  # the next request is a trial
    trial_in_flight: bool = False
    probe_unhealthy: bool = False
    probe_failures: int = 0
    probe_successes: int = 0
    probe_ended: bool = False  # the current half-open came from a passing probe
    probe_misses: int = 0  # trials that failed right after a probe ended an ejection
    last_failure: float = float("-inf")
    last_reason: str = ""
    ewma: float = 0.0  # seconds; 0 until the first sample
    in_flight: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_SAMPLES))

    # --- reading -----------------------------------------------------------------

    def state(self, now: float) -> str:
        """healthy, degraded, half-open, cooling, ejected or unhealthy."""
        if self.probe_unhealthy and not self.probe_successes:
            return "unhealthy"
        ejected = now < self.ejected_until
        if ejected and not self.degraded:
            return "ejected"
        if now < self.cooldown_until:
            return "cooling"
        if ejected:
            return "degraded"
        if self.half_open or self.probe_unhealthy:
            return "half-open"
        return "healthy"

    def usable(self, now: float) -> bool:
        """Healthy, degraded, or half-open with its trial slot free."""
        state = self.state(now)
        return state == "healthy" or state == "degraded" or (
            state == "half-open" and not self.trial_in_flight
        )

    def ejected(self, now: float) -> bool:
        """Out of service by ejection (a degraded endpoint is not: it is still tried)."""
        return now < self.ejected_until and not self.degraded

    def out_of_service(self, now: float) -> bool:
        """Ejected, degraded or failing its probes: probed every unhealthyInterval."""
        return self.probe_unhealthy or now < self.ejected_until

    def available_at(self, now: float) -> float:
        """When this endpoint may next be tried (``now`` if it may be tried now)."""
        ejected_until = 0.0 if self.degraded else self.ejected_until
        return max(now, ejected_until, self.cooldown_until)

    def score(self) -> float:
        """Lower is better: latency EWMA weighted by load (peak-EWMA style)."""
        return self.ewma * (self.in_flight + 1)

    def percentile(self, q: float) -> float | None:
        if len(self.recent) < 20:
            return None
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    # --- live traffic -------------------------------------------------------------

    def admit(self, now: float) -> Admission:
        """Take this endpoint for one attempt: DENIED if it must not be tried now,
        a TRIAL if this attempt is the one half-open trial, ADMITTED otherwise."""
        state = self.state(now)
        if state == "healthy" or state == "degraded":
            self.in_flight += 1
            return Admission(AdmissionKind.ADMITTED, now)
        if state == "half-open" and not self.trial_in_flight:
            self.trial_in_flight = True
            self.in_flight += 1
            return Admission(AdmissionKind.TRIAL, now)
        return DENIED

    def force_admit(self, now: float) -> Admission:
        """Panic mode: try this endpoint whatever its state; it counts as a trial."""
        self.in_flight += 1
        return Admission(AdmissionKind.PANIC, now)

    def reserve_trial(self) -> bool:
        """Hold the coming half-open trial for a request that waits for it (a quick
        retry after a short cooldown); False if another request holds it."""
        if self.trial_in_flight:
            return False
        self.trial_in_flight = True
        return True

    def take_trial(self, now: float) -> Admission:
        """Use a reserved trial (it is released unless this returns a TRIAL)."""
        state = self.state(now)
        if state == "half-open":
            self.in_flight += 1
            return Admission(AdmissionKind.TRIAL, now)
        self.trial_in_flight = False
        return self.admit(now)

    def release_trial(self) -> None:
        """A reserved trial that will not be used."""
        self.trial_in_flight = False

    def done(self, admission: Admission) -> None:
        """An admitted attempt is over, whatever its outcome (call exactly once per admit)."""
        self.in_flight = max(0, self.in_flight - 1)
        if admission.kind is AdmissionKind.TRIAL:
            self.trial_in_flight = False

    def sample(self, latency: float) -> None:
        """A latency observation, without judging the attempt (a stream at its commit point)."""
        self.ewma = latency if self.ewma == 0.0 else self.ewma + EWMA_WEIGHT * (latency - self.ewma)
        self.recent.append(latency)

    def succeeded(self, now: float, admission: Admission, latency: float | None = None) -> None:
        """The attempt worked; a successful trial (or panic attempt), or any success
        once nothing holds the endpoint out, restores it."""
        self.consecutive_failures = 0
        if latency is not None:
            self.sample(latency)
        if (
            (self.half_open or self.probe_unhealthy)
            and (self.probe_successes or not self.probe_unhealthy)  # probes do not say down
            and admission.at >= self.out_since
            and (admission.trial or now >= self.available_at(now))
        ):
            self.half_open = False
            self.degraded = False
            self.probe_unhealthy = False
            self.probe_ended = False
            self.probe_misses = 0
            self.cooldown = 0.0
            self.cooldown_repeated = False
            self.cooldown_until = min(self.cooldown_until, now)
            self.ejected_until = min(self.ejected_until, now)
            log.info("upstream restored provider=%s region=%s", self.provider, self.region)

    def answered(self) -> None:
        """The upstream answered, though not with success (a 4xx): it is up."""
        self.consecutive_failures = 0

    def failed(
        self,
        now: float,
        reason: str,
        policy: OutlierDetection,
        may_eject: bool,
        admission: Admission,
        at_once: bool = False,
    ) -> bool:
        """Count a failed attempt; True if this failure ejected the endpoint.

        ``at_once`` ejects without waiting for more failures (the upstream
        refused the router's own key: more tries will not fix it).

        A failed trial ejects again at once (for longer); other failures eject
        after ``consecutiveErrors`` in a row. When the provider may not lose one
        more endpoint (``may_eject`` False) the endpoint is degraded instead.
        A failure of an attempt sent before the endpoint went out of service
        is not counted again.
        """
        self.last_failure = now
        self.last_reason = reason
        if admission.at < self.out_since:
            return False
        self.consecutive_failures += 1
        trial = admission.kind is AdmissionKind.TRIAL
        if trial and self.probe_ended:
            self.probe_misses += 1
        if trial or at_once or self.consecutive_failures >= policy.consecutive_errors:
            self._eject(now, reason, policy, degrade=not may_eject)
            return may_eject
        return False

    def rate_limited(
        self,
        now: float,
        retry_after: float | None,
        policy: RateLimit,
        admission: Admission,
    ) -> None:
        """A 429: cool down for what the upstream asked (or the default), at most the cap.

        Only a 429 to a request sent after the endpoint went out of service
        (its trial, or one right after the cooldown) doubles it; the 429s of
        requests that were already in flight count once.
        """
        self.last_failure = now
        self.last_reason = "429"
        if admission.at < self.out_since and now < self.cooldown_until:
            return  # this burst already started the cooldown
        asked = policy.default_cooldown if retry_after is None else max(retry_after, 0.0)
        recent = self.cooldown_until > 0 and now <= self.cooldown_until + max(self.cooldown, 1.0)
        repeated = (recent or admission.kind is AdmissionKind.TRIAL) and self.cooldown * 2 > asked
        length = self.cooldown * 2 if repeated else asked
        self.cooldown = min(max(length, 0.001), policy.max_cooldown)
        self.cooldown_repeated = repeated
        self.cooldown_until = now + self.cooldown
        self.out_since = now
        self.half_open = True
        log.warning(
            "upstream cooling down provider=%s region=%s seconds=%.2f reason=429",
            self.provider,
            self.region,
            self.cooldown,
        )

    def _eject(self, now: float, reason: str, policy: OutlierDetection, degrade: bool) -> None:
        if self.ejected_until and now - self.ejected_until > policy.max_ejection_time:
            self.ejections = 0  # healthy long enough: start the multiplier over
        self.ejections += 1
        length = min(policy.base_ejection_time * self.ejections, policy.max_ejection_time)
        self.ejected_until = now + length
        self.degraded = degrade
        self.out_since = now
        self.half_open = True
        self.probe_ended = False
        self.consecutive_failures = 0
        log.warning(
            "upstream %s provider=%s region=%s seconds=%.1f ejections=%d reason=%s",
            "degraded (maxEjectionPercent reached)" if degrade else "ejected",
            self.provider,
            self.region,
            length,
            self.ejections,
            reason,
        )

    # --- active probes ------------------------------------------------------------

    def probed(self, now: float, ok: bool, check: HealthCheck) -> None:
        """One active probe's result."""
        if not ok:
            self.probe_successes = 0
            self.probe_failures += 1
            self.probe_misses = 0  # the probes see this outage: trust them to see its end
            if not self.probe_unhealthy and self.probe_failures >= check.unhealthy_threshold:
                self.probe_unhealthy = True
                log.warning(
                    "upstream unhealthy provider=%s region=%s reason=probes failures=%d",
                    self.provider,
                    self.region,
                    self.probe_failures,
                )
            return
        self.probe_failures = 0
        self.probe_successes += 1
        if self.probe_unhealthy:
            self.half_open = self.probe_ended = True
            if self.probe_successes >= check.healthy_threshold:
                self.probe_unhealthy = False
                if now >= max(self.ejected_until, self.cooldown_until):
                    self.half_open = self.probe_ended = False
                log.info(
                    "upstream healthy again provider=%s region=%s (probes)",
                    self.provider,
                    self.region,
                )
        if now < self.ejected_until and now - self.out_since >= unhealthy_interval(check) * (
            2**self.probe_misses
        ):
            self.ejected_until = now
            self.degraded = False
            self.probe_ended = True
            log.info(
                "upstream probe passed, half-open provider=%s region=%s",
                self.provider,
                self.region,
            )


def unhealthy_interval(check: HealthCheck) -> float:
    """Time between probes of an out-of-service endpoint (never longer than ``interval``)."""
    return min(check.unhealthy_interval, check.interval)


def may_eject(pool: Iterable[EndpointHealth], now: float, max_percent: int) -> bool:
    """Whether one more endpoint of this provider may be ejected (Envoy: at least one may)."""
    members = list(pool)
    if max_percent <= 0:
        return False
    ejected = sum(1 for member in members if member.ejected(now))
    allowed = max(1, len(members) * max_percent // 100)
    return ejected < allowed
