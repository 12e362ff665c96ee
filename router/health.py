"""Upstream health: one state machine per endpoint, fed by three inputs.

* **Passive outlier detection** (Envoy's semantics): ``consecutiveErrors``
  failures in a row on live traffic eject an endpoint for
  ``baseEjectionTime`` times the number of times it was ejected, capped at
  ``maxEjectionTime``; no more than ``maxEjectionPercent`` of a provider's
  endpoints are ejected at once (but always at least one may be).
* **Rate limits**: a 429 puts the endpoint (one provider key in one region)
  in a cooldown of the time it asked for — ``Retry-After`` is a floor, capped
  by ``rateLimit.maxCooldown`` — without counting as an error. A failure during
  or right after a cooldown doubles it.
* **Active probes** (see :mod:`.probes`): ``unhealthyThreshold`` failed probes
  mark the endpoint unhealthy, ``healthyThreshold`` passed ones bring it back.

An ejection or cooldown that runs out does not release the whole backlog at
once: the endpoint is *half-open* and admits one trial request; success
restores it, failure ejects it again for longer.

Everything here is a pure function of the calls made and the ``now`` passed
in, so the rules are tested without sockets or sleeps.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from modelroute.spec.model import OutlierDetection, RateLimit

log = logging.getLogger("modelroute.health")

class Admission(enum.Enum):
    """How an attempt was let through; the attempt carries it to its outcome."""

    DENIED = 0
    ADMITTED = 1
    TRIAL = 2  # the one request a half-open endpoint lets through
    PANIC = 3  # no candidate was available; tried anyway

    def __bool__(self) -> bool:
        return self is not Admission.DENIED

    @property
    def trial(self) -> bool:
        return self in (Admission.TRIAL, Admission.PANIC)


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
    cooldown: float = 0.0  # length of the current or last cooldown
    cooldown_until: float = 0.0
    half_open: bool = False  # the next request is a trial
    trial_in_flight: bool = False
    probe_unhealthy: bool = False
    probe_failures: int = 0
    probe_successes: int = 0
    last_failure: float = float("-inf")
    last_reason: str = ""
    ewma: float = 0.0  # seconds; 0 until the first sample
    in_flight: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_SAMPLES))

    # --- reading -----------------------------------------------------------------

    def state(self, now: float) -> str:
        if self.probe_unhealthy:
            return "unhealthy"
        if now < self.ejected_until:
            return "ejected"
        if now < self.cooldown_until:
            return "cooling"
        if self.half_open:
            return "half-open"
        return "healthy"

    def usable(self, now: float) -> bool:
        """Healthy, or half-open with its trial slot free."""
        state = self.state(now)
        return state == "healthy" or (state == "half-open" and not self.trial_in_flight)

    def ejected(self, now: float) -> bool:
        return now < self.ejected_until

    def available_at(self, now: float) -> float:
        """When this endpoint may next be tried (``now`` if it may be tried now)."""
        return max(now, self.ejected_until, self.cooldown_until)

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
        TRIAL if this attempt is the one half-open trial, ADMITTED otherwise."""
        state = self.state(now)
        if state == "healthy":
            self.in_flight += 1
            return Admission.ADMITTED
        if state == "half-open" and not self.trial_in_flight:
            self.trial_in_flight = True
            self.in_flight += 1
            return Admission.TRIAL
        return Admission.DENIED

    def force_admit(self) -> Admission:
        """Panic mode: try this endpoint whatever its state; it counts as a trial."""
        self.in_flight += 1
        return Admission.PANIC

    def done(self, admission: Admission) -> None:
        """An admitted attempt is over, whatever its outcome (call exactly once per admit)."""
        self.in_flight = max(0, self.in_flight - 1)
        if admission is Admission.TRIAL:
            self.trial_in_flight = False

    def sample(self, latency: float) -> None:
        """A latency observation, without judging the attempt (a stream at its commit point)."""
        self.ewma = latency if self.ewma == 0.0 else self.ewma + EWMA_WEIGHT * (latency - self.ewma)
        self.recent.append(latency)

    def succeeded(self, now: float, admission: Admission, latency: float | None = None) -> None:
        """The attempt worked; a successful trial (or panic attempt) restores the endpoint."""
        self.consecutive_failures = 0
        if latency is not None:
            self.sample(latency)
        if self.half_open and (admission.trial or now >= self.available_at(now)):
            self.half_open = False
            self.cooldown = 0.0
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
        admission: Admission = Admission.ADMITTED,
    ) -> bool:
        """Count a failed attempt; True if this failure ejected the endpoint.

        A failed trial ejects again at once (for longer); other failures eject
        after ``consecutiveErrors`` in a row, if the pool may lose one more.
        """
        self.last_failure = now
        self.last_reason = reason
        self.consecutive_failures += 1
        trial = admission is Admission.TRIAL
        if trial or (self.consecutive_failures >= policy.consecutive_errors and may_eject):
            self._eject(now, reason, policy)
            return True
        return False

    def rate_limited(
        self,
        now: float,
        retry_after: float | None,
        policy: RateLimit,
        admission: Admission = Admission.ADMITTED,
    ) -> None:
        """A 429: cool down for what the upstream asked (or the default), at most the cap;
        a 429 during or right after a cooldown (or on its trial) doubles it."""
        self.last_failure = now
        self.last_reason = "429"
        asked = policy.default_cooldown if retry_after is None else max(retry_after, 0.0)
        recent = self.cooldown_until > 0 and now <= self.cooldown_until + max(self.cooldown, 1.0)
        trial = admission is Admission.TRIAL
        length = max(asked, self.cooldown * 2) if (recent or trial) else asked
        self.cooldown = min(max(length, 0.001), policy.max_cooldown)
        self.cooldown_until = now + self.cooldown
        self.half_open = True
        log.warning(
            "upstream cooling down provider=%s region=%s seconds=%.2f reason=429",
            self.provider,
            self.region,
            self.cooldown,
        )

    def _eject(self, now: float, reason: str, policy: OutlierDetection) -> None:
        if self.ejected_until and now - self.ejected_until > policy.max_ejection_time:
            self.ejections = 0  # healthy long enough: start the multiplier over
        self.ejections += 1
        length = min(policy.base_ejection_time * self.ejections, policy.max_ejection_time)
        self.ejected_until = now + length
        self.half_open = True
        self.consecutive_failures = 0
        log.warning(
            "upstream ejected provider=%s region=%s seconds=%.1f ejections=%d reason=%s",
            self.provider,
            self.region,
            length,
            self.ejections,
            reason,
        )

    # --- active probes ------------------------------------------------------------

    def probed(self, ok: bool, healthy_threshold: int, unhealthy_threshold: int) -> None:
        if ok:
            self.probe_failures = 0
            self.probe_successes += 1
            if self.probe_unhealthy and self.probe_successes >= healthy_threshold:
                self.probe_unhealthy = False
                log.info(
                    "upstream healthy again provider=%s region=%s (probes)",
                    self.provider,
                    self.region,
                )
        else:
            self.probe_successes = 0
            self.probe_failures += 1
            if not self.probe_unhealthy and self.probe_failures >= unhealthy_threshold:
                self.probe_unhealthy = True
                log.warning(
                    "upstream unhealthy provider=%s region=%s reason=probes failures=%d",
                    self.provider,
                    self.region,
                    self.probe_failures,
                )


def may_eject(pool: Iterable[EndpointHealth], now: float, max_percent: int) -> bool:
    """Whether one more endpoint of this provider may be ejected (Envoy: at least one may)."""
    members = list(pool)
    if max_percent <= 0:
        return False
    ejected = sum(1 for member in members if member.ejected(now))
    allowed = max(1, len(members) * max_percent // 100)
    return ejected < allowed
