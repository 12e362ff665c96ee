"""Which route to reconcile next: deduplicated, one worker per route, failures backed off.

The semantics of client-go's rate-limited work queue, which every Kubernetes
controller relies on:

* a key is queued at most once, however many events name it;
* a key being worked on is not handed to another worker; added again
  meanwhile, it is queued once more when the first worker is done, so no
  change is lost and no route is reconciled twice at once;
* :meth:`WorkQueue.retry` re-adds a key after an exponential, jittered delay
  that grows with each consecutive failure of that key (0.5 s up to 5 min);
  :meth:`WorkQueue.forget` resets it after a success;
* :meth:`WorkQueue.add_after` schedules a key for later (the resync spreads
  every route over its period with it, so a restart or a resync never fires
  all routes at once).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Hashable

BACKOFF_BASE = 0.5
BACKOFF_MAX = 300.0


def backoff(failures: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Delay before retry number ``failures`` (1, 2, ...): doubling, capped, ±25 % jitter."""
    delay = min(cap, base * 2.0 ** max(0, failures - 1))
    return delay * (0.75 + random.random() / 2)


class ShutDown(Exception):
    """The queue was shut down: workers exit."""


class WorkQueue:
    def __init__(self, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> None:
        self.base = base
        self.cap = cap
        self._ready: deque[Hashable] = deque()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()  # added while active: queue again when done
        self._later: list[tuple[float, int, Hashable]] = []
        self._order = itertools.count()
        self._failures: dict[Hashable, int] = {}
        self._cond = threading.Condition()
        self._shut = False

    def add(self, key: Hashable) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: Hashable) -> None:
        if self._shut:
            return
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._cond.notify()

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            heapq.heappush(self._later, (time.monotonic() + delay, next(self._order), key))
            self._cond.notify()

    def retry(self, key: Hashable) -> float:
        """Queue ``key`` again after its backoff; returns the delay."""
        with self._cond:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        delay = backoff(failures, self.base, self.cap)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> Hashable | None:
        """The next key to work on (mark it done with :meth:`done`); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shut:
                    raise ShutDown
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    _, _, key = heapq.heappop(self._later)
                    self._add(key)
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._active.add(key)
                    return key
                waits = [self._later[0][0] - now] if self._later else []
                if deadline is not None:
                    if now >= deadline:
                        return None
                    waits.append(deadline - now)
                self._cond.wait(min(waits) if waits else None)

    def done(self, key: Hashable) -> None:
        with self._cond:
            self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add(key)

    def __len__(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._later)

    def shut_down(self) -> None:
        with self._cond:
            self._shut = True
            self._cond.notify_all()
