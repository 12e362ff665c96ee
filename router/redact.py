"""The one place secrets are taken out of what the router logs or returns.

The router holds every upstream's API key, and base URLs may carry
credentials too (``https://user:pass@host/v1?api-key=…``). Anything that
leaves the process through a path an attacker or an operator can read —
log lines at every level, error bodies relayed from upstreams, ``/status`` —
passes through here:

* :func:`remember` is told each credential when a config is loaded;
* :func:`scrub` replaces any of them in bytes (an upstream error body that
  echoes the request's ``Authorization`` header), :func:`scrub_text` in text;
* :func:`safe_url` drops userinfo and the query string of a URL;
* :func:`install_log_filter` makes every log record pass :func:`scrub_text`,
  so no logger, ours or a library's, can print a key.

Keys too short to be meaningful (under 8 characters) are not remembered:
scrubbing them would mangle ordinary text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MARK = "[REDACTED]"
_MIN_SECRET = 8

_secrets: set[str] = set()
_secrets_bytes: list[bytes] = []


def remember(secrets: Iterable[str]) -> None:
    """Add credentials to scrub from now on (kept across reloads: a rotated key
    may still appear in a late log line)."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET and secret not in _secrets:
            _secrets.add(secret)
    _secrets_bytes[:] = sorted((s.encode() for s in _secrets), key=len, reverse=True)


def scrub(data: bytes) -> bytes:
    for secret in _secrets_bytes:
        if secret in data:
            data = data.replace(secret, MARK.encode())
    return data


def scrub_text(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MARK)
    return text


def safe_url(url: str) -> str:
    """``url`` without userinfo or query string (both may hold credentials)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MARK
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            cleaned = scrub_text(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_text:
                record.exc_text = scrub_text(record.exc_text)
        return True


def install_log_filter() -> None:
    """Scrub every record that reaches any handler of the root logger."""
    scrubber = _ScrubFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ScrubFilter) for f in handler.filters):
            handler.addFilter(scrubber)
