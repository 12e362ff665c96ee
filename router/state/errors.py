"""How a Redis call fails, on one screen.

Each class is a decision for the caller, not a place in the code:

    RedisError          Redis answered, with an error reply (``-ERR``, ``-WRONGTYPE``,
                        ``-NOSCRIPT``, ``-NOAUTH``): the connection is fine and stays
                        open; the command as sent is wrong for the data or the server,
                        and sending it again gets the same answer. A bug or a
                        misconfiguration: do not retry, do not fall back silently.

    RedisUnavailable    no answer: the command may or may not have run. The caller
    │                   falls back (fails open or closed, as its feature decides).
    │                   ``kind`` says why, and is what ``on_error`` reports:
    │                     connect       no connection: refused, TLS, AUTH or SELECT
    │                                   refused, or the connect timeout passed
    │                     timeout       this call's own timeout passed (connecting
    │                                   included); the connection was closed
    │                     closed        the connection closed under the call: Redis
    │                                   closed it, another call on it timed out, was
    │                                   cancelled or read garbage, or the client closed
    │                     breaker-open  too many failures in a row: failed at once,
    │                                   without touching the network
    └── ProtocolError   kind "protocol": the bytes Redis sent are not RESP2, or
                        break a bound (see :mod:`.resp`); the connection was closed

A cancelled call raises :class:`asyncio.CancelledError`, as any cancelled
await does; its connection is closed all the same (see :mod:`.redis`).
"""

from __future__ import annotations

from typing import Literal

FailureKind = Literal["connect", "timeout", "closed", "breaker-open", "protocol"]

__all__ = ["FailureKind", "ProtocolError", "RedisError", "RedisUnavailable"]


class RedisError(Exception):
    """An error reply: Redis refused the command (``message`` is its text, as sent)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        """The reply's first word by Redis convention: ``ERR``, ``NOSCRIPT``, ``WRONGTYPE``."""
        return self.message.split(" ", 1)[0]


class RedisUnavailable(Exception):
    """No answer from Redis; ``kind`` says why (see the module docstring)."""

    def __init__(self, message: str, *, kind: FailureKind) -> None:
        super().__init__(message)
        self.message = message
        self.kind: FailureKind = kind


class ProtocolError(RedisUnavailable):
    """Redis sent bytes that are not RESP2 within the parser's bounds."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="protocol")
