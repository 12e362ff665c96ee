"""Durations and byte sizes as users write them in a ModelRoute.

Durations follow Go's `time.ParseDuration` spelling (``100ms``, ``2s``,
``1h30m``), which is what Kubernetes users already write in Envoy and
controller configs. Sizes follow Kubernetes quantities (``10Mi``, ``512Ki``,
``1M``) or a plain integer of bytes.
"""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h))+$"
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

SIZE_PATTERN = r"^\d+(Ki|Mi|Gi|k|M|G)?$"
_SIZE = re.compile(SIZE_PATTERN)
_SIZE_UNITS = {
    "": 1,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration string; ValueError if it is not one."""
    if not isinstance(text, str) or not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"expected a duration such as '500ms', '2s' or '1m30s', got {text!r}")
    return sum(
        float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text)
    )


def parse_size(value: int | str) -> int:
    """Bytes in an integer or a Kubernetes quantity string; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 10Mi or 1048576, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a size such as 10Mi or 1048576, got {value!r}")
    digits = value.rstrip("KiMGk")
    return int(digits) * _SIZE_UNITS[value[len(digits) :]]


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of a duration, for messages and rendering."""
    if seconds < 1 and seconds * 1000 == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"
