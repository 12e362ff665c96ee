"""What an upstream's answer means, and what the client gets of it.

Pure functions over status, headers and body, used by the attempt loop
(:mod:`.proxy`): which failure a non-2xx answer stands for, whether a 2xx is
the JSON object the API promises, how long an upstream asked us to wait, and
how an upstream's error reaches the client — as it came when it is in
OpenAI's shape, re-worded into that shape when it is not (an HTML page from a
load balancer), never with one of the router's credentials in it.
"""

from __future__ import annotations

import contextlib
import re
import time
from email.utils import parsedate_to_datetime

import orjson

from modelroute.router import redact
from modelroute.router.errors import (
    AttemptFailed,
    BadUpstreamAnswer,
    RateLimited,
    UpstreamAnswered,
    UpstreamAuthFailed,
    UpstreamRejected,
    UpstreamServerError,
    error_body,
)
from modelroute.router.headers import header, to_client

Headers = list[tuple[bytes, bytes]]
JSON = (b"content-type", b"application/json")
_TAG = re.compile(r"<[^>]*>")  # markup in an upstream's HTML error page


def parse_retry_after(headers: Headers) -> float | None:
    """Seconds an upstream asked us to wait (``retry-after-ms``, or ``Retry-After``
    in seconds or as an HTTP date)."""
    value = header(headers, b"retry-after-ms")
    if value is not None:
        with contextlib.suppress(ValueError):
            return float(value) / 1000
    value = header(headers, b"retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(status: int, headers: Headers, body: bytes) -> AttemptFailed:
    """The failure an upstream's non-2xx answer stands for."""
    if status < 400:
        return BadUpstreamAnswer(f"upstream answered {status}, not an API answer")
    if status == 429:
        return RateLimited(status, headers, body, parse_retry_after(headers))
    if status in (401, 403):
        return UpstreamAuthFailed(status, headers, body)
    if status >= 500:
        return UpstreamServerError(status, headers, body)
    return UpstreamRejected(status, headers, body)


FULL_CHECK_UNDER = 64 * 1024  # parsing a 400 KB embeddings answer whole costs ~0.75 ms


def check_answer(status: int, body: bytes, close_delimited: bool = True) -> None:
    """A 2xx answer must be the JSON object the API promises; else BadUpstreamAnswer.

    A truncated close-delimited body, an HTML page from a captive proxy or a
    load balancer's 200 all look like success at the HTTP level; relaying
    them would hand the client an answer its SDK cannot parse. A body whose
    length or chunks framed it cannot have been cut, so a large one is only
    checked for being an object (``{`` … ``}``), not parsed whole: embeddings
    answers run to megabytes, and a full parse was the largest cost of relaying
    them. Small or close-delimited bodies are parsed.
    """
    if not 200 <= status < 300:
        raise classify(status, [], body)
    if not close_delimited and len(body) > FULL_CHECK_UNDER:
        if body.lstrip()[:1] != b"{" or body.rstrip()[-1:] != b"}":
            raise BadUpstreamAnswer(f"upstream answered {status} with a body that is not JSON")
        return
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadUpstreamAnswer(
            f"upstream answered {status} with a body that is not JSON"
        ) from None
    if not isinstance(parsed, dict):
        raise BadUpstreamAnswer(f"upstream answered {status} with JSON that is not an object")


def client_error(status: int, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
    """An upstream error answer as the client gets it (see Proxy._pass_through)."""
    body = redact.scrub(body)
    headers = [(name, redact.scrub(value)) for name, value in headers]
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict | str):
        return headers, body
    text = body.decode("utf-8", "replace")
    excerpt = " ".join(_TAG.sub(" ", text).split())[:200]
    message = f"The upstream answered {status}" + (f": {excerpt}" if excerpt else ".")
    kind = "server_error" if status >= 500 else "invalid_request_error"
    wrapped = error_body(message, kind, code="upstream_error")
    kept = [(name, value) for name, value in headers if name != b"content-type"]
    return [JSON, *kept], wrapped


def relayed(failure: AttemptFailed | None) -> tuple[int, Headers, bytes] | None:
    """The upstream answer behind a final failure, as the client gets it: its status,
    headers and an OpenAI-shaped body (:func:`client_error`). None when nothing
    answered (connect failure, timeout, reset, a malformed answer), when the answer
    refused the router's own key (no business of the client), and for an error event
    before content (see Proxy._give_up: it is relayed as a stream)."""
    if isinstance(failure, UpstreamAnswered) and not failure.router_fault:
        headers, body = client_error(failure.status, to_client(failure.headers), failure.body)
        return failure.status, headers, body
    return None
