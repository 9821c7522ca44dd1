"""Calibration: a history the engine made with known rates is fitted back, and backtested."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.history import HostHistory, bucket_removals
from app.simulation.calibrate import MU_GRID, backtest, fit, project
from app.simulation.engine import simulate
from app.simulation.workload import JobClass, Kind, Leftover, Pressure, Workload


def _history(mu: float, shm_share: float = 0.0) -> HostHistory:
    per_day = 300.0
    classes = [JobClass("pc", per_day * (1 - shm_share), 60.0, (Leftover(Kind.PAGECACHE, 8),),
                        period_seconds=86_400 / (per_day * (1 - shm_share)))]
    if shm_share:
        classes.append(JobClass("shm", per_day * shm_share, 60.0, (Leftover(Kind.SHMEM, 4),),
                                period_seconds=86_400 / (per_day * shm_share)))
    w = Workload("truth", tuple(classes), Pressure(pagecache_per_day=mu),
                 duration_seconds=3 * 86_400, step_seconds=600)
    e = simulate(w, ["objcg-kmem"]).eras["objcg-kmem"]
    removed = sorted([60.0 + k * 86_400 / 300 for k in range(900)])
    shm = [16384 if (k % 10) < shm_share * 10 else 0 for k in range(900)]
    rows = [(t, 32768 if s == 0 else 0, s, None, 0) for t, s in zip(removed, shm, strict=True)]
    return HostHistory("h", "objcg-kmem", 2, 1, datetime.now(UTC), e.times_seconds,
                       [float(x) for x in e.dying], [0.0] * len(e.dying),
                       bucket_removals(rows, 600.0))


@pytest.mark.parametrize("mu", [0.3, 2.0, 8.0])
def test_fit_recovers_the_reclaim_rate(mu: float) -> None:
    f = fit(_history(mu))
    step = MU_GRID[1] / MU_GRID[0]
    assert mu / step <= f.pagecache_per_day <= mu * step
    assert f.removed_per_day == pytest.approx(300, rel=0.01)
    assert any("100 dentries per cgroup assumed" in w for w in f.words)


def test_tmpfs_share_and_backtest() -> None:
    h = _history(2.0, shm_share=0.3)
    f = fit(h)
    assert f.shares["shmem"] == pytest.approx(0.3, abs=0.01)
    b = backtest(h)
    assert b is not None and b.points > 100
    assert b.mape_percent is not None and b.mape_percent < 10
    p = project(h, 10)
    pre, lru = p.result.eras["pre-5.3"].dying[-1], p.result.eras["lru-reparent"].dying[-1]
    obj = p.result.eras["objcg-kmem"].dying[-1]
    assert pre >= obj > lru  # tmpfs keeps growing until 7.1's reparenting
    assert p.horizon_seconds == pytest.approx(h.times_seconds[-1] + 10 * 86_400)
