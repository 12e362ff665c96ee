"""Browser pages calling the router directly (CORS), when a route allows their origins.

Off by default: without ``server.cors`` a preflight (``OPTIONS``) gets 405 and
no answer carries ``Access-Control-*`` headers, so browsers refuse to let
pages read them. With it, a preflight from an allowed origin is answered
204 with the methods, the request headers an OpenAI client sends, and
``max-age``; answers to allowed origins name the origin and expose the
headers a client reads (request ids, who answered, cost, ``Retry-After``).
Origins are matched exactly; ``"*"`` allows any. Bodies must still be JSON
(415 otherwise), which is itself a "non-simple" request: a page can never
skip the preflight.
"""

from __future__ import annotations

from modelroute.spec.model import Cors

Headers = list[tuple[bytes, bytes]]

_METHODS = b"GET, POST, OPTIONS"
_REQUEST_HEADERS = frozenset(
    {
        b"authorization",
        b"content-type",
        b"accept",
        b"x-request-id",
        b"x-session-id",
        b"x-modelroute-tier",
        b"x-modelroute-max-cost-usd",
        b"openai-beta",
        b"openai-organization",
        b"openai-project",
        b"idempotency-key",
        b"traceparent",
        b"tracestate",
    }
)
_REQUEST_PREFIXES = (b"x-stainless-",)
_EXPOSED = (
    b"x-request-id, x-modelroute-request-id, x-modelroute-provider, x-modelroute-region, "
    b"x-modelroute-model, x-modelroute-attempts, x-modelroute-attempt-log, x-modelroute-tier, "
    b"x-modelroute-degraded, x-modelroute-skipped, x-modelroute-cost-usd, retry-after"
)


def allowed(cors: Cors, origin: bytes) -> bool:
    return "*" in cors.allowed_origins or origin.decode("latin-1") in cors.allowed_origins


def answer_headers(origin: bytes) -> Headers:
    """Headers on an answer to an allowed origin."""
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-expose-headers", _EXPOSED),
        (b"vary", b"Origin"),
    ]


def preflight_headers(cors: Cors, origin: bytes, requested: bytes | None) -> Headers:
    """Headers of the 204 that answers an allowed origin's preflight: the request
    headers it asked for, as far as an OpenAI client needs them."""
    wanted = [h.strip().lower() for h in (requested or b"").split(b",") if h.strip()]
    granted = [h for h in wanted if h in _REQUEST_HEADERS or h.startswith(_REQUEST_PREFIXES)]
    headers = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-methods", _METHODS),
        (b"access-control-max-age", b"%d" % int(cors.max_age)),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
    ]
    if granted:
        headers.append((b"access-control-allow-headers", b", ".join(granted)))
    return headers
