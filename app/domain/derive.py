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


def days_to_limit(dying_now: int | None, total_now: int | None, per_day: float | None,
                  limit: int = 65_535) -> float | None:
    """Days until the 16-bit memcg ID space runs out at the current growth (None if never)."""
    if total_now is None or per_day is None or per_day <= 0:
        return None
    return max(0.0, (limit - total_now) / per_day)
