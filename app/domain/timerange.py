"""Time ranges of the API and the range picker: parsed, bounded and validated in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PRESETS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}
MAX_RANGE = timedelta(days=400)


class RangeError(ValueError):
    """A time range that cannot be served; the message says why."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A validated [since, until] in UTC, and the preset it came from (if any)."""

    since: datetime
    until: datetime
    preset: str | None

    @property
    def seconds(self) -> float:
        """Length of the range."""
        return (self.until - self.since).total_seconds()


# Times a database stores on both backends once in UTC: PostgreSQL's timestamptz ends at
# year 10000 and Python's datetime at year 1, and an offset can push a valid-looking value
# past either (0001-01-01T00:00+14:00 is year 0 in UTC); hour and day arithmetic near either
# end overflows. Assumption: no kernel or collector clock is before the Unix epoch or past
# year 9000, and no query needs to be.
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(9000, 1, 1, tzinfo=UTC)


def as_utc(t: datetime) -> datetime:
    """A naive time is taken as UTC; an aware one is converted."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def resolve(preset: str | None, since: datetime | None, until: datetime | None,
            end: datetime, default: str = "24h") -> TimeRange:
    """Resolve ?range= or ?since=&until= (ending at `end` by default) into a checked range."""
    if since is None and until is None:
        name = preset or default
        if name not in PRESETS:
            raise RangeError(f"range must be one of {', '.join(PRESETS)} or since/until, "
                             f"not {name!r}")
        return TimeRange(end - PRESETS[name], end, name)
    if preset is not None:
        raise RangeError("give either range or since/until, not both")
    try:
        u = as_utc(until) if until is not None else end
        s = as_utc(since) if since is not None else u - PRESETS[default]
    except OverflowError:  # a time at the edge of year 1 or 9999: no range fits there
        raise RangeError("since/until out of range: a range must lie between the years 1 and "
                         f"9999, and until leave room for the {default} before it") from None
    if s >= u:
        raise RangeError(f"since ({s.isoformat()}) must be before until ({u.isoformat()})")
    if u - s > MAX_RANGE:
        raise RangeError(f"a range may span at most {MAX_RANGE.days} days")
    return TimeRange(s, u, None)
