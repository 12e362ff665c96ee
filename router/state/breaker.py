"""The Redis client's circuit breaker: when Redis is down, callers lose nothing.

A timeout costs a caller its whole timeout; a Redis that is down, stopped or
blackholed would cost every caller that much. So after ``failure_threshold``
failures in a row the breaker *opens*: calls fail at once, without touching
the network, for ``open_for`` seconds. Then it is *half-open*: one call (the
trial) goes through while the others still fail at once. The trial's answer
closes the breaker; its failure opens it again for twice as long, up to
:data:`MAX_OPEN_FOR`, and the wait starts over at ``open_for`` once Redis
answers.

What counts is a failure of the connection, not of each call on it: a
timeout that closes the connection under 200 pipelined calls is one failure,
as is a refused connect however many callers waited for it. Any reply counts
as an answer, an error reply included: Redis is there. A cancelled call says
nothing either way.

Pure: every method takes ``now`` (the event loop's clock), so the rules are
tested without sockets or sleeps.
"""

from __future__ import annotations

import enum

__all__ = ["MAX_OPEN_FOR", "Breaker", "BreakerState"]

MAX_OPEN_FOR = 10.0  # seconds: the longest wait while failures continue


class BreakerState(enum.Enum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls fail at once, until ``reopens_at``
    HALF_OPEN = "half-open"  # one trial call is out; the others fail at once


class Breaker:
    """Counts failures in a row and decides which calls may touch the network."""

    def __init__(self, failure_threshold: int = 3, open_for: float = 1.0) -> None:
        if failure_threshold < 1 or open_for <= 0:
            raise ValueError("failure_threshold must be at least 1 and open_for positive")
        self.failure_threshold = failure_threshold
        self.open_for = open_for
        self.state = BreakerState.CLOSED
        self.failures = 0  # in a row, while closed
        self.reopens_at = 0.0  # while open: when the next trial may go
        self._wait = open_for  # the next open period

    @property
    def available(self) -> bool:
        return self.state is BreakerState.CLOSED

    def allow(self, now: float) -> bool:
        """May a call go to Redis now? True for the trial (the first call once open_for passed)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and now >= self.reopens_at:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def succeeded(self) -> bool:
        """Redis answered. True when that closed the breaker."""
        self.failures = 0
        self._wait = self.open_for
        if self.state is BreakerState.CLOSED:
            return False
        self.state = BreakerState.CLOSED
        return True

    def failed(self, now: float) -> bool:
        """A connection failed, or the trial did. True when that opened a closed breaker."""
        if self.state is BreakerState.OPEN:
            return False  # the call it failed was let through before the breaker opened
        if self.state is BreakerState.CLOSED:
            self.failures += 1
            if self.failures < self.failure_threshold:
                return False
        else:  # the trial failed: wait longer
            self._wait = min(max(self.open_for, MAX_OPEN_FOR), self._wait * 2)
        opened = self.state is BreakerState.CLOSED
        self.state = BreakerState.OPEN
        self.reopens_at = now + self._wait
        self.failures = 0
        return opened

    def abandoned(self, now: float) -> None:
        """A call gave up without an answer or a failure of Redis (it was cancelled):
        if it was the trial, the next call may be one."""
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN
            self.reopens_at = now
