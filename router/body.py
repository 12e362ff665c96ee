"""Byte-level work on JSON bodies, where parsing or re-serialising the whole would cost.

Two jobs, both with a safe fallback (return None and the caller does it the
ordinary way):

* :func:`usage_of` reads the ``usage`` object of an answer by parsing only
  that slice: an 8 KB answer parses in about 17 µs, its ``usage`` in about 4.
* :func:`rewrite_model` swaps the ``model`` value of a large request without
  re-serialising the rest (a 1 MiB image prompt is mostly one string that
  orjson would copy and re-escape), and :func:`add_stream_usage` asks for the
  usage chunk the same way.

Why a raw byte search is sound here: inside a JSON string every ``"`` is
escaped, so the byte sequence ``"model"`` can only be a key or the whole
string value ``model``. A key that occurs exactly once is the top-level one
(every request has it); anything else falls back.
"""

from __future__ import annotations

from typing import Any

import orjson

_WHITESPACE = b" \t\r\n"


def _value_start(raw: bytes, key_end: int) -> int:
    """Index of the value after ``"key"`` at ``key_end`` (past ``:`` and spaces), or -1."""
    i = key_end
    n = len(raw)
    while i < n and raw[i] in _WHITESPACE:
        i += 1
    if i >= n or raw[i] != 0x3A:  # ':'
        return -1
    i += 1
    while i < n and raw[i] in _WHITESPACE:
        i += 1
    return i


def usage_of(answer: bytes) -> Any:
    """The answer's ``usage`` value; parses only that slice when it can."""
    key = answer.rfind(b'"usage"')
    if key < 0:
        return None
    start = _value_start(answer, key + 7)
    if start < 0 or start >= len(answer) or answer[start] != 0x7B:  # '{'
        return _full(answer)
    depth = 0
    for end in range(start, min(len(answer), start + 4096)):
        byte = answer[end]
        if byte == 0x22:  # a string inside usage: not the flat numbers we expect
            return _full(answer)
        if byte == 0x7B:
            depth += 1
        elif byte == 0x7D:
            depth -= 1
            if depth == 0:
                try:
                    return orjson.loads(answer[start : end + 1])
                except orjson.JSONDecodeError:
                    return _full(answer)
    return _full(answer)


def _full(answer: bytes) -> Any:
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    return parsed.get("usage") if isinstance(parsed, dict) else None


def rewrite_model(raw: bytes, old: str, new: str) -> bytes | None:
    """``raw`` with its top-level ``model`` value replaced, or None if that is not certain."""
    key = b'"model"'
    at = raw.find(key)
    if at < 0 or raw.find(key, at + len(key)) >= 0:
        return None  # absent or ambiguous
    start = _value_start(raw, at + len(key))
    current = orjson.dumps(old)
    if start < 0 or raw[start : start + len(current)] != current:
        return None  # written with other escapes than orjson's: let orjson rewrite it
    return raw[:start] + orjson.dumps(new) + raw[start + len(current) :]


def add_stream_usage(raw: bytes) -> bytes | None:
    """``raw`` with ``"stream_options":{"include_usage":true}`` added, or None if unsure."""
    if b'"stream_options"' in raw:
        return None
    end = len(raw.rstrip(_WHITESPACE)) - 1
    if end < 1 or raw[end] != 0x7D:  # '}'
        return None
    return raw[:end] + b',"stream_options":{"include_usage":true}' + raw[end:]
