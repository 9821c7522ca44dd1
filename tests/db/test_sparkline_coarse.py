"""The fleet sparkline from the fine (5-minute) buckets the growth slope is fitted on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.db.queries import SLOPE_SPLIT, coarse

HALF_HOUR = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _fine(start: datetime, tops: list[float]) -> list[tuple[datetime, float, float]]:
    return [(start + timedelta(minutes=5 * i + 2), top - 1, top) for i, top in enumerate(tops)]


def test_the_max_of_each_half_hour_keeps_a_burst() -> None:
    tops: list[float] = [10, 11, 600, 12, 13, 14, 15, 16, 17, 18, 19, 20]  # two half hours
    assert SLOPE_SPLIT == 6
    assert coarse(_fine(HALF_HOUR, tops)) == [600, 20]


def test_a_history_inside_one_half_hour_is_drawn_from_its_fine_buckets() -> None:
    assert coarse(_fine(HALF_HOUR, [3, 5, 4])) == [3, 5, 4]
    assert coarse([]) == []
