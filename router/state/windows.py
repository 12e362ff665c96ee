"""Budget windows in UTC: an hour, a day or a calendar month.

A window is named by its start (unix seconds), so every router, in every
region, counts into the same Redis key for the same window without agreeing
on anything but the clock.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Literal

Window = Literal["hour", "day", "month"]


def window_bounds(window: Window, now: float) -> tuple[int, int]:
    """(start, end) in unix seconds of the window holding ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    if window == "hour":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return int(start.timestamp()), int(start.timestamp()) + 3600
    if window == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(start.timestamp()), int(start.timestamp()) + 86400
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return int(start.timestamp()), int(start.timestamp()) + days * 86400
