"""Which headers cross the router, in each direction, and which never do.

Client → upstream: an allow-list (:data:`TO_UPSTREAM`, plus the SDK's
``x-stainless-*`` telemetry). A deny-list leaks whatever it forgot: a
client's ``x-api-key`` for one provider must never reach another provider,
and the router holds each upstream's key itself. Framing, ``Host``,
``Content-Type`` and ``Accept-Encoding: identity`` (the router reads usage
from bodies) are the router's own.

The client-side server applies the allow-list while it parses
(``Request.forward``), so the hot path does not walk the headers twice.

Upstream → client: the upstream's headers pass, minus hop-by-hop, framing,
cookies and any ``x-modelroute-*`` an upstream made up, plus the router's
own ``x-modelroute-*`` headers that say who answered. The upstream's
``x-request-id`` passes (it is what SDKs expose and provider support asks
for); the router's own id is ``x-modelroute-request-id``.
"""

from __future__ import annotations

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

TO_UPSTREAM = frozenset(
    {
        b"accept",
        b"user-agent",
        b"openai-beta",  # feature flags some OpenAI-compatible APIs read
        b"anthropic-version",  # the Messages API's version and beta features, for
        b"anthropic-beta",  # providers that serve it natively
        b"idempotency-key",
        b"traceparent",  # W3C trace context
        b"tracestate",
        b"baggage",
    }
)
TO_UPSTREAM_PREFIXES = (b"x-stainless-",)  # the OpenAI SDKs' platform and retry telemetry

NOT_TO_CLIENT = _HOP_BY_HOP | {
    b"content-length",
    b"content-encoding",
    b"set-cookie",
    b"date",
    b"server",
}


def to_client(upstream_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in upstream_headers
        if name not in NOT_TO_CLIENT and not name.startswith(b"x-modelroute-")
    ]


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
