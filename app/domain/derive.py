"""Pure arithmetic over stored samples: growth rates and the cost of dying memcgs."""

from __future__ import annotations

from datetime import datetime


def growth_per_day(old: tuple[datetime, int] | None, new: tuple[datetime, int] | None,
                   min_seconds: float = 60.0) -> float | None:
    """Change per day between two (time, value) points; None when they are too close."""
    if old is None or new is None:
        return None
    seconds = (new[0] - old[0]).total_seconds()
    if seconds < min_seconds:
        return None
    return (new[1] - old[1]) * 86_400.0 / seconds


