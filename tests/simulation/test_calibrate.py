"""Calibration: a history the engine made with known rates is fitted back, and backtested."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.history import HostHistory, bucket_removals
from app.simulation.calibrate import MAX_COHORT, MAX_STEPS, MU_GRID, backtest, fit, project, thinned
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


def test_removals_in_buckets_add_up() -> None:
    rows = [(0.0, 4096, 0, 100, None), (59.0, 0, 8192, None, 16384), (60.0, 4096, 4096, 50, 0)]
    a, b = bucket_removals(rows, 60.0)
    assert (a.seconds, a.removed, a.with_file, a.with_shmem, a.pagecache_only) == (0, 2, 1, 1, 1)
    assert (a.with_kstack, a.slab_known, a.slab_bytes, a.kstack_bytes) == (1, 1, 100, 16384)
    assert (b.seconds, b.removed, b.pagecache_only, b.file_bytes, b.shmem_bytes) == (
        60.0, 1, 0, 4096, 4096)
    with pytest.raises(ValueError, match="bucket width must be positive"):
        bucket_removals(rows, 0)


def test_a_thinned_busy_class_gives_the_same_dying_curve() -> None:
    busy = Workload("busy", (JobClass("pc", 40_000, 60.0, (Leftover(Kind.PAGECACHE, 8),),
                                      period_seconds=86_400 / 40_000),),
                    Pressure(pagecache_per_day=2.0), duration_seconds=3 * 86_400,
                    step_seconds=3600)
    thin = thinned(busy)
    (job,) = thin.classes
    whole = simulate(busy, ["objcg-kmem"]).eras["objcg-kmem"]
    part = simulate(thin, ["objcg-kmem"]).eras["objcg-kmem"]
    assert job.count == MAX_COHORT and whole.created_total == 120_000
    assert job.weight * job.count == pytest.approx(whole.created_total)
    assert part.created_total == whole.created_total
    assert max(whole.dying) > 50_000
    # Quasi-random draws: within 1 % once a few hours of arrivals are in (the first hours
    # are coarser: each drawn cgroup stands for 60).
    assert part.dying[6:] == pytest.approx(whole.dying[6:], rel=0.01)
    assert part.dying == pytest.approx(whole.dying, rel=0.03, abs=100)


def test_the_horizon_does_not_add_steps() -> None:
    h = _history(2.0)
    p30, p90 = project(h, 30), project(h, 90)
    assert len(p30.result.eras["objcg-kmem"].dying) == MAX_STEPS + 1
    assert len(p90.result.eras["objcg-kmem"].dying) == MAX_STEPS + 1
