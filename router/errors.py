"""The router's failure model, on one screen.

Every failure answers three questions for the code that catches it: may the
request move to another candidate, does it count against the upstream's
health, and what does the client see?

    ClientError                     the client's own fault: answered at once, never retried
    ├── BadRequest            400   malformed JSON, missing model/messages/prompt/input
    ├── Unauthorized          401   missing or unknown client API key
    ├── ModelNotFound         404   a model name the route does not serve
    ├── UnsupportedMediaType  415   a body that is not declared as JSON
    ├── OverLimit             429   a client rate limit or a budget of the route is
    │                               spent (Retry-After: when it frees up)
    └── (413, 414, 431 are refused by the HTTP server before a handler runs)

    AttemptFailed                   one upstream attempt gave no usable answer
    ├── Retryable                   next candidate may try; counts against health
    │   ├── ConnectFailed             refused, DNS, TLS, before the request was sent
    │   │                             (retry on "connect-failure"; the upstream did nothing)
    │   ├── UpstreamReset             the connection died after the request was sent and
    │   │                             before a complete answer: the upstream may have done
    │   │                             the work (retry on "reset"; spends the retry budget)
    │   ├── BadUpstreamAnswer         an answer no client should get: malformed HTTP, an
    │   │                             unknown content-coding, a head or body over the
    │   │                             limits, a 2xx whose JSON does not parse, a redirect,
    │   │                             a malformed stream event  (retry on "5xx")
    │   ├── UpstreamTimeout           connect / first token / total  (retry on "timeout")
    │   ├── UpstreamServerError       5xx answer  (retry on "5xx")
    │   ├── UpstreamAuthFailed        401/403 for the router's key: always fails over,
    │   │                             ejects the endpoint at once
    │   ├── RateLimited               429, with the Retry-After it asked  (retry on "429")
    │   ├── StreamFailedEarly         error event in a 200 stream before any content
    │   └── StreamFailedLate          error event after content: the client already has
    │                                 it, so no failover, but the endpoint's health pays
    └── UpstreamRejected            4xx (not 429): the client's fault as the upstream
                                    sees it; passed through verbatim, no failover,
                                    no health penalty

    (no class)                      every candidate failed, or the policy stopped retrying:
                                    when the last failure was an upstream's answer (429,
                                    5xx) the client gets that answer (a 429's Retry-After:
                                    when the first candidate is due back); an error event
                                    before content reaches it as that event in a 200
                                    stream; else (connect
                                    failures, timeouts, resets, nothing in service) 503
    (no class)                      any failure after a stream's commit point: the stream
                                    ends with an SSE error event (sent text is never replayed)

Errors reach clients in OpenAI's shape: ``{"error": {"message", "type",
"param", "code"}}`` with ``param``/``code`` null where they do not apply.
"""

from __future__ import annotations

import orjson


def error_body(
    message: str, kind: str, *, code: str | None = None, param: str | None = None
) -> bytes:
    """An OpenAI-shaped error body."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


class ClientError(Exception):
    """A request the router refuses because of the client's own input."""

    status = 400
    kind = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> bytes:
        return error_body(self.message, self.kind, code=self.code, param=self.param)


class BadRequest(ClientError):
    status = 400


class OverLimit(ClientError):
    """The route's own limit, not an upstream's: a client rate limit or a budget."""

    status = 429
    kind = "requests"  # OpenAI's type for rate limits; "insufficient_quota" for budgets

    def __init__(
        self, message: str, *, code: str, kind: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        super().__init__(message, code=code)
        self.kind = kind
        self.headers = headers


class Unauthorized(ClientError):
    status = 401
    code = "invalid_api_key"


class ModelNotFound(ClientError):
    status = 404
    code = "model_not_found"


class NotFound(ClientError):
    status = 404
    code = "unknown_url"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class AttemptFailed(Exception):
    """One upstream attempt produced no answer the client should get."""

    reason = "error"  # the retry_on word this failure answers to, and a metric label
    router_fault = False  # the router's own setup failed (its key): always fail over

    def __init__(self, message: str = "", *, public: str | None = None) -> None:
        super().__init__(message)
        self._public = public

    @property
    def public(self) -> str:
        """What a client may read of this failure: no upstream address, no errno."""
        return self._public if self._public is not None else str(self)


class Retryable(AttemptFailed):
    """The next candidate may try; the failed endpoint's health takes the blame."""


class ConnectFailed(Retryable):
    reason = "connect-failure"


class UpstreamReset(Retryable):
    """The connection failed after the request was written: the work may have been done.

    Only a failure before the request was written is a connect failure; this
    one is never re-sent silently (that would bill a POST twice) but goes
    through the retry policy and budget like a timeout.
    """

    reason = "reset"


class BadUpstreamAnswer(Retryable):
    """The upstream answered something unusable (an HTTP or payload protocol error)."""

    reason = "5xx"


class UpstreamTimeout(Retryable):
    reason = "timeout"


class UpstreamAnswered(Retryable):
    """A complete upstream HTTP answer that is a failure; kept to pass it through."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.headers = headers
        self.body = body


class UpstreamServerError(UpstreamAnswered):
    reason = "5xx"


class UpstreamAuthFailed(UpstreamAnswered):
    """A 401/403 for the router's own provider key: that endpoint's failure, not the client's.

    The upstream did no work, so moving on is free whatever ``retryOn`` says,
    and the endpoint leaves rotation at once (a rotated or revoked key does
    not heal by retrying); the client never hears that "its" key is wrong.
    """

    reason = "auth"
    router_fault = True


class RateLimited(UpstreamAnswered):
    reason = "429"

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        retry_after: float | None,
    ) -> None:
        super().__init__(status, headers, body)
        self.retry_after = retry_after


class StreamFailedEarly(Retryable):
    """The upstream sent an error inside a 200 stream before any content."""

    reason = "5xx"

    def __init__(self, event: bytes) -> None:
        super().__init__("upstream stream failed before any content")
        self.event = event


class StreamFailedLate(Retryable):
    """The upstream sent an error event after content: relayed, and it counts as a failure."""

    reason = "5xx"


class UpstreamRejected(AttemptFailed):
    """A 4xx (other than 429) from the upstream: passed to the client as it is."""

    reason = "4xx"

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(f"upstream rejected the request with {status}")
        self.status = status
        self.headers = headers
        self.body = body
