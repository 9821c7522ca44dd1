"""Growth that needs evidence (app/domain/growth.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.growth import days_to_limit, growth, theil_sen

T0 = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)


def series(hours: float, step_s: int, value) -> list[tuple[datetime, float]]:
    n = int(hours * 3600 // step_s) + 1
    return [(T0 + timedelta(seconds=i * step_s), value(i * step_s)) for i in range(n)]


def test_theil_sen_ignores_a_burst() -> None:
    xs = list(range(100))
    ys = [2.0 * x for x in xs]
    ys[50:53] = [5000, 6000, 7000]  # a burst of 3 samples
    assert theil_sen(xs, ys) == pytest.approx(2.0)
    assert theil_sen([1, 1], [3, 9]) == 0.0 and theil_sen([], []) == 0.0


def test_no_figure_before_the_minimum_history() -> None:
    pts = series(0.5, 15, lambda s: 350 + s / 10)  # 30 min of +8,640 a day
    g = growth(pts, pts[-1][0], timedelta(hours=24))
    assert g.per_day is None and not g.shown
    assert g.note == "collecting, 30 min so far (growth from 60 min)"
    assert days_to_limit(400, g) is None
    assert growth([], T0, H).note == "collecting: no history yet"


def test_24h_means_24h_and_a_short_history_says_its_span() -> None:
    # Flat at 300 for 23 h, a burst of 2,000 in the last hour that drains again.
    def v(s: float) -> float:
        return 300 + (2000 if 23 * 3600 <= s < 23.5 * 3600 else 0)
    pts = series(24, 60, v)
    g24 = growth(pts, pts[-1][0], timedelta(hours=24))
    assert g24.covered and g24.per_day == pytest.approx(0.0)
    assert days_to_limit(2300, g24) is None
    g7 = growth(pts, pts[-1][0], timedelta(days=7))
    assert not g7.covered and g7.note == "over the 24 h there is, not 7 d"
    # The two figures are fitted on different windows: a steady rise differs from a recent one.
    rising = series(48, 300, lambda s: 100 + (s - 24 * 3600) / 864 if s > 24 * 3600 else 100)
    a = growth(rising, rising[-1][0], timedelta(hours=24))
    b = growth(rising, rising[-1][0], timedelta(days=7))
    assert a.per_day == pytest.approx(100.0) and b.per_day is not None and b.per_day < 60


def test_days_to_limit_from_a_robust_slope() -> None:
    pts = series(6, 60, lambda s: 1000 + s / 86.4)  # +1,000 a day
    g = growth(pts, pts[-1][0], timedelta(hours=24), min_history=H)
    assert g.per_day == pytest.approx(1000.0)
    assert days_to_limit(64_535, g) == pytest.approx(1.0)
