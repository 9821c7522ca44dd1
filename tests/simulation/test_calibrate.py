"""Calibration: a history the engine made with known rates is fitted back, and backtested."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from app.domain.history import ChurnBucket, HostHistory, bucket_removals
from app.simulation.calibrate import (
    MAX_COHORT,
    MAX_STEPS,
    MU_GRID,
    RMSE_FLAG_SHARE,
    backtest,
    fit,
    project,
    removal_rate,
    thinned,
)
from app.simulation.engine import dying_hold_ids, simulate
from app.simulation.eras import ERAS
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


def _linear(era: str, dying0: float, per_day: float, removed_per_day: float, days: float,
            live: float = 0.0, churn: list[ChurnBucket] | None = None,
            seen_per_day: float | None = None) -> HostHistory:
    """A history in `era`: dying memcgs rising linearly, removals seen at a steady rate
    (v1 figures: page cache, no slab reported), one observation every 10 minutes."""
    step = 600.0
    times = [k * step for k in range(int(days * 86_400 / step) + 1)]
    seen = removed_per_day if seen_per_day is None else seen_per_day
    n = int(seen * days)
    rows = [((k + 0.5) * days * 86_400 / n, 8192, 0, None, None) for k in range(n)]
    return HostHistory("h", era, 4, 1, datetime.now(UTC), times,
                       [dying0 + per_day * t / 86_400 for t in times], [live] * len(times),
                       bucket_removals(rows, step), churn or [])


def test_every_era_starts_at_the_last_observation() -> None:
    h = _history(2.0, shm_share=0.3)
    p = project(h, 30)
    assert p.start_seconds == h.times_seconds[-1] and p.start_dying == round(h.dying[-1])
    for name, e in p.result.eras.items():
        assert e.times_seconds[0] == h.times_seconds[-1], name
        assert e.dying[0] == round(h.dying[-1]), name
    # Then each era follows its own rules: LRU reparenting frees the page-cache and tmpfs
    # pinned ones at once; 5.13+ keeps the tmpfs share.
    assert p.result.eras["lru-reparent"].dying[1] == 0
    assert p.result.eras["objcg-kmem"].dying[1] > 0.4 * h.dying[-1]


def test_a_heavy_pre_5_3_host_never_passes_the_id_limit() -> None:
    # 20,000 removals a day, each leaving slab (100 dentries assumed on v1): before 5.3 a
    # dentry pins its memcg, so uncapped the dying count would pass 65,535 within days.
    h = _linear("pre-5.3", 5_000, 15_000, 20_000, 1.0, live=535)
    p = project(h, 30)
    limit = 65_535 - 535
    assert p.live == 535
    pre = p.result.eras["pre-5.3"]
    assert max(pre.dying) == limit  # reached, never passed
    # Every era whose dying memcgs hold IDs stays under the limit; v4 5/7 (a patch against
    # 5.2, after 73f576c04b94) recycles them at offline and may pass it, with no ENOSPC.
    for name, e in p.result.eras.items():
        if dying_hold_ids(ERAS[name], h.kernel):
            assert max(e.dying) <= limit, name
        else:
            assert e.enospc_seconds is None, name
    assert max(p.result.eras["v4-5/7"].dying) > limit
    assert pre.enospc_seconds is not None
    # The ENOSPC time is where the curve reaches the limit: before it, under it.
    k = next(i for i, d in enumerate(pre.dying) if d >= limit)
    assert pre.times_seconds[k - 1] < pre.enospc_seconds <= pre.times_seconds[k]
    assert pre.dying[k - 1] < limit
    # Figures that follow the count are held with it: the cost at the limit stays flat, but
    # for the per-memcg caches' slab waste, which shrinks as their objects are freed.
    assert pre.dying_cost_bytes[-1] == pytest.approx(pre.dying_cost_bytes[k + 1], rel=0.03)
    assert pre.dying_cost_bytes[-1] <= pre.dying_cost_bytes[k + 1]
    # 5.13+ frees slab at offline: page cache alone does not reach the limit here.
    assert p.result.eras["objcg-kmem"].enospc_seconds is None


def test_counted_churn_sets_the_rate_and_an_isolated_burst_is_left_out() -> None:
    # The collector saw 240 removals a day (cgroups that lived less than a tick are never
    # seen); the kernel's ids counted 2 a minute, and one burst of 2,000 in one minute.
    churn = [ChurnBucket(k * 60.0, 2, 2 + (2000 if k == 50 else 0)) for k in range(1, 121)]
    h = _linear("objcg-kmem", 300, 100, 2880, 120 / 1440, churn=churn, seen_per_day=240)
    rate, source, words = removal_rate(h, h.times_seconds[-1])
    assert source == "counted"
    # 238 steady removals over the 2 h less the burst's minute: 2,880 a day, not the
    # 26,880 a day that 2,240 over 2 h would say.
    assert rate == pytest.approx(238 / ((7200 - 600) / 86_400), rel=1e-9)
    assert any("burst of 2,002 removals" in w for w in words)
    f = fit(h)
    assert f.rate_source == "counted" and f.removed_per_day == pytest.approx(rate)
    # Without counted churn, the removals seen give the rate, and say what they miss.
    seen = replace(h, churn=[])
    r2, s2, w2 = removal_rate(seen, seen.times_seconds[-1])
    assert s2 == "seen" and r2 == pytest.approx(240, rel=0.01)
    assert any("lived less than one tick are missed" in w for w in w2)
    # A single removal is no burst, however alone it is.
    one = replace(seen, removals=bucket_removals([(600.0, 0, 0, None, None)], 600.0))
    assert removal_rate(one, one.times_seconds[-1])[0] == pytest.approx(12)
    # A burst that recurs is part of the workload: two bursts of 1,000, nothing else.
    twice = [ChurnBucket(600.0, 0, 1000), ChurnBucket(4200.0, 0, 1000)]
    r3, _, w3 = removal_rate(replace(h, churn=twice), h.times_seconds[-1])
    assert r3 == pytest.approx(2000 / (7200 / 86_400)) and not any("burst" in w for w in w3)


def test_a_good_fit_has_no_flags_and_poor_fits_are_flagged() -> None:
    assert fit(_history(2.0)).flags == []
    # Page cache reclaimed faster than the grid reaches: flagged at its edge.
    fast = fit(_history(400.0))
    assert fast.pagecache_per_day == MU_GRID[-1]
    edge = [x for x in fast.flags if x.code == "reclaim_rate_at_grid_edge"]
    assert len(edge) == 1 and "fastest end of its grid" in edge[0].message
    # A burst of 2,000 dying memcgs for 10 minutes on a level of 300-540: no smooth model
    # follows it, and the error is flagged against the level.
    h = _linear("objcg-kmem", 300, 2880, 2880, 120 / 1440)
    bumped = [d + (2000 if 20 * 60 <= t < 30 * 60 else 0)
              for t, d in zip(h.times_seconds, h.dying, strict=True)]
    poor = fit(replace(h, dying=bumped))
    assert "large_error" in [x.code for x in poor.flags]
    assert poor.rmse > RMSE_FLAG_SHARE * poor.mean_level


def test_the_backtest_projects_as_the_projection_does_and_beats_carry_forward() -> None:
    h = _history(2.0, shm_share=0.3)
    b = backtest(h)
    assert b is not None
    split = h.times_seconds[-1] * 2 / 3
    last = max(i for i, t in enumerate(h.times_seconds) if t <= split)
    later = h.dying[last + 1:]
    assert b.points == len(later)
    assert b.baseline_mae == pytest.approx(sum(abs(h.dying[last] - d) for d in later)
                                           / len(later))
    # A steadily rising curve: the model follows it; holding the last value does not.
    assert b.mae < b.baseline_mae and b.better == "model"
    # A flat history: carrying forward is exact, and the verdict says so.
    flat = replace(h, dying=[100.0] * len(h.dying), removals=[])
    bf = backtest(flat)
    assert bf is not None and bf.baseline_mae == 0
    assert bf.better == ("tie" if bf.mae == 0 else "carry-forward")


def test_a_quiet_host_projects_flat_zero_and_a_full_one_starts_at_the_limit() -> None:
    quiet = _linear("objcg-kmem", 0, 0, 0, 1.0)
    p = project(quiet, 7)
    assert p.fit.flags == [] and p.fit.rate_source == "none"
    assert all(set(e.dying) == {0} and e.enospc_seconds is None
               for e in p.result.eras.values())
    # 65,000 dying and 1,000 live: past the ID limit if dying memcgs held IDs. Where they do
    # (pre-5.3, which stands for kernels before 4.8) the era starts at the limit, at the
    # observation's time, and never passes it; since 4.8 the ID is recycled at offline
    # (73f576c04b94): the count starts at the observation and no ENOSPC comes from it.
    full = _linear("objcg-kmem", 65_000, 0, 0, 1.0, live=1_000)
    pf = project(full, 7)
    held = {n for n in pf.result.eras if dying_hold_ids(ERAS[n], full.kernel)}
    assert held == {"pre-5.3"}
    for name, e in pf.result.eras.items():
        if name in held:
            assert e.dying[0] == 64_535 and max(e.dying) == 64_535
            assert e.enospc_seconds == full.times_seconds[-1]
        else:
            assert e.dying[0] == 65_000 and e.enospc_seconds is None
