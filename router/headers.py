"""Which headers cross the router, in each direction, and which never do.

Client → upstream: everything end-to-end passes (SDK telemetry, provider
extensions) except what the router owns: hop-by-hop headers, ``Host``,
framing (``Content-Length``), the client's credentials (replaced by the
endpoint's key, along with the OpenAI account headers that belong to them) and
``Accept-Encoding`` (the router reads usage from bodies, so it asks for them
uncompressed).

The client-side server applies :data:`NOT_TO_UPSTREAM` while it parses
(``Request.forward``), so the hot path does not walk the headers twice.

Upstream → client: the upstream's headers pass, minus hop-by-hop, framing and
cookies, plus ``x-modelroute-*`` headers that say who answered.
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

NOT_TO_UPSTREAM = _HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"content-type",
    b"authorization",
    b"api-key",
    b"openai-organization",
    b"openai-project",
    b"accept-encoding",
    b"expect",
    b"cookie",
    b"x-request-id",
}

NOT_TO_CLIENT = _HOP_BY_HOP | {
    b"content-length",
    b"content-encoding",
    b"set-cookie",
    b"date",
    b"server",
    b"x-request-id",
}


def to_client(upstream_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in upstream_headers if name not in NOT_TO_CLIENT]


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
