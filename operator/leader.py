"""Leader election on a ``coordination.k8s.io`` Lease: any number of replicas, one writer.

The algorithm of client-go's ``leaderelection`` package, on the same Lease
fields, so ``kubectl get lease -n <ns> modelroute-operator`` reads as it does
for any controller:

* a candidate takes the Lease when nobody holds it, or when its holder has not
  renewed it for ``leaseDurationSeconds``. "Not renewed" is judged by this
  process's own clock, from when it *saw* the record last change, never by
  comparing another node's timestamps (clock skew cannot hand over a Lease);
* every write names the resourceVersion it read, so of two candidates racing
  for an expired Lease exactly one wins (the other gets 409);
* the leader renews every ``retry_period``; if it cannot for ``renew_deadline``
  (shorter than the lease duration) it stops leading *before* anyone else may
  take over: the gap between the two is the time its workers get to stop.
  :meth:`LeaderElector.holding` is checked before every write, so a leader cut
  off from the API server (a partitioned node, an old pod stuck terminating)
  stops writing on its own;
* on a clean shutdown the leader releases the Lease, so a standby replica takes
  over at its next retry instead of after a full lease duration.

:func:`decide` is the whole decision, pure; :class:`LeaderElector` does the I/O.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelroute.operator.kube import LEASE, ApiError, Conflict, Kube
from modelroute.operator.settings import Timing

log = logging.getLogger("modelroute.operator")


class Decision(enum.Enum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # we hold it
    TAKE = "take"  # free, released, or its holder stopped renewing
    WAIT = "wait"  # someone else holds it


@dataclass(frozen=True, slots=True)
class Seen:
    """A Lease record as last read, and when (this process's monotonic clock) it changed."""

    holder: str
    renew_time: str
    duration: float
    changed_at: float


def observe(lease: Mapping[str, Any] | None, before: Seen | None, now: float) -> Seen | None:
    """What we know of ``lease`` now; ``changed_at`` moves only when the record changed."""
    if lease is None:
        return None
    spec = lease.get("spec") or {}
    holder = str(spec.get("holderIdentity") or "")
    renew = str(spec.get("renewTime") or "")
    duration = float(spec.get("leaseDurationSeconds") or 0)
    if before is not None and (before.holder, before.renew_time) == (holder, renew):
        return before
    return Seen(holder, renew, duration, now)


def decide(seen: Seen | None, identity: str, now: float) -> Decision:
    if seen is None:
        return Decision.CREATE
    if seen.holder == identity:
        return Decision.RENEW
    if not seen.holder or now >= seen.changed_at + seen.duration:
        return Decision.TAKE
    return Decision.WAIT


def micro_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_record(
    lease: Mapping[str, Any] | None,
    identity: str,
    duration: float,
    namespace: str,
    name: str,
    at: datetime,
    release: bool = False,
) -> dict[str, Any]:
    """The Lease to write: renewed, taken over (a new transition) or released."""
    spec = dict((lease or {}).get("spec") or {})
    taking = spec.get("holderIdentity") != identity
    spec["holderIdentity"] = "" if release else identity
    spec["leaseDurationSeconds"] = 1 if release else max(1, round(duration))
    spec["renewTime"] = micro_time(at)
    if taking and not release:
        spec["acquireTime"] = micro_time(at)
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if lease else 0)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if lease is not None:
        metadata["resourceVersion"] = lease["metadata"].get("resourceVersion")
    return {
        "apiVersion": LEASE.api_version,
        "kind": LEASE.kind,
        "metadata": metadata,
        "spec": spec,
    }


class LeaderElector:
    """Campaign for the Lease in a thread; ``on_start``/``on_stop`` bracket each term."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing,
        on_start: Callable[[], None],
        on_stop: Callable[[], None],
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self._on_start = on_start
        self._on_stop = on_stop
        self._seen: Seen | None = None
        self._renewed_at: float | None = None  # monotonic time of our last successful write
        self._leading = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_attempt = time.monotonic()
        """When the loop last tried: the liveness probe checks the loop still turns."""

    def holding(self) -> bool:
        """True while this replica may write: it renewed within the renew deadline."""
        renewed = self._renewed_at
        return (
            self._leading
            and renewed is not None
            and time.monotonic() < renewed + self.timing.renew_deadline
        )

    @property
    def leading(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop campaigning; a leader stops its term and releases the Lease."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.last_attempt = time.monotonic()
            won = self._try()
            if won and not self._leading:
                self._leading = True
                log.info("leading: %s holds lease %s/%s", self.identity, self.namespace, self.name)
                self._on_start()
            elif self._leading and not self.holding():
                log.error(
                    "lost the lease %s/%s (no renewal for %.0fs): stopping",
                    self.namespace,
                    self.name,
                    self.timing.renew_deadline,
                )
                self._leading = False
                self._on_stop()
            self._stopped.wait(self.timing.retry_period)
        if self._leading:
            self._leading = False
            self._on_stop()
            self._release()

    def _try(self) -> bool:
        """One round of client-go's tryAcquireOrRenew; True if we hold the Lease now."""
        now = time.monotonic()
        try:
            lease = self.kube.get(LEASE, self.namespace, self.name)
            self._seen = observe(lease, self._seen, now)
            decision = decide(self._seen, self.identity, now)
            if decision is not Decision.RENEW:
                self._renewed_at = None  # someone else's (or nobody's) now, whatever we thought
            if decision is Decision.WAIT:
                return False
            record = lease_record(
                lease,
                self.identity,
                self.timing.lease_duration,
                self.namespace,
                self.name,
                datetime.now(UTC),
            )
            if decision is Decision.CREATE:
                self.kube.create(record)
            else:
                self.kube.replace(record)
        except Conflict:
            return False  # another candidate wrote first
        except ApiError as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        self._renewed_at = now
        return True

    def _release(self) -> None:
        try:
            lease = self.kube.get(LEASE, self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            record = lease_record(
                lease,
                self.identity,
                self.timing.lease_duration,
                self.namespace,
                self.name,
                datetime.now(UTC),
                release=True,
            )
            self.kube.replace(record)
            log.info("released lease %s/%s", self.namespace, self.name)
        except ApiError as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
