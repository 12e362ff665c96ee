"""State the router's pods share through Redis: budgets, rate-limit counters, a response cache.

The Redis client is :mod:`.redis` (one pipelined connection, strict per-call
timeouts, a circuit breaker); :mod:`.resp` is the wire protocol it speaks,
:mod:`.breaker` the breaker's rules and :mod:`.errors` the two ways a call fails.
"""
