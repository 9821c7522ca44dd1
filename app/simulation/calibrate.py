"""Fit a workload to a host's own history, project it in every era, and backtest the fit.

What is fitted, and how:
  * the rate of removed cgroups per day, and what they leave (shares with page cache, with
    tmpfs, with kernel stacks; mean sizes) from the removed cgroups' last memory.stat, as
    counts and byte sums per time bucket (HostHistory.removals: bounded, however many);
  * the dying memcgs already there at the start of the window: a share p that never goes
    (tmpfs-like) and the rest pinned by page cache;
  * the page-cache reclaim rate (per page, per day), by least squares of the simulated dying
    curve in the host's own era against the observed one, on a log grid.
Slab left behind is taken from memory.stat where the kernel reports it (cgroup2); v1 hosts do
not, and 100 dentries per cgroup are assumed (this only matters for eras before 5.3, where
slab pins). Everything assumed is said in `words`.
Cost is bounded whatever the history and the horizon: classes are thinned to MAX_COHORT
simulated cgroups each (`thinned`), and a projection has at most MAX_STEPS + 1 points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np
import numpy.typing as npt

from app.domain.eras import DEFAULT_ERA
from app.domain.history import HostHistory, RemovalBucket
from app.simulation.engine import SimulationResult, simulate
from app.simulation.eras import ERAS
from app.simulation.workload import DENTRY, JobClass, Kind, Leftover, Pressure, Workload

MU_GRID = [0.01 * (10 ** (k / 4)) for k in range(17)]  # 0.01 .. 100 per day
P_GRID = [0.0, 0.25, 0.5, 0.75, 1.0]
ASSUMED_DENTRIES = 100
MAX_COHORT = 2000  # simulated cgroups per class, at most (see `thinned`)
MAX_STEPS = 600  # output points of a projection, whatever its horizon


@dataclass(slots=True)
class Fit:
    """A fitted workload and how it was found."""

    workload: Workload
    removed_per_day: float
    pagecache_per_day: float
    initial_dying: int
    initial_persistent_share: float
    shares: dict[str, float]
    words: list[str] = field(default_factory=list)
    rmse: float = 0.0


@dataclass(slots=True)
class Backtest:
    """Fit on the first two thirds, predict the last third, in the host's own era."""

    split_seconds: float
    mae: float
    mape_percent: float | None
    max_error: float
    points: int


@dataclass(slots=True)
class Projection:
    """The observed curve, each era's projection, and the backtest."""

    fit: Fit
    result: SimulationResult
    observed_seconds: list[float]
    observed_dying: list[float]
    horizon_seconds: float
    backtest: Backtest | None


def _window(h: HostHistory, until: float) -> tuple[list[float], list[float], list[int]]:
    idx = [i for i, t in enumerate(h.times_seconds) if t <= until]
    return ([h.times_seconds[i] for i in idx], [h.dying[i] for i in idx], idx)


_TOTALS = [f.name for f in fields(RemovalBucket)][1:]  # every count and sum, not `seconds`


def _removals(h: HostHistory, until: float) -> RemovalBucket:
    """Every removal bucket up to `until`, summed (counts and sums add exactly)."""
    picked = [b for b in h.removals if b.seconds <= until]
    return RemovalBucket(until, *(sum(getattr(b, k) for b in picked) for k in _TOTALS))


def _mean_pages(total_bytes: int, count: int, default_bytes: int, unit: int) -> int:
    return max(1, int((total_bytes / count if count else default_bytes) // unit))


def _classes(h: HostHistory, until: float) -> tuple[list[JobClass], dict[str, float], float,
                                                      list[str]]:
    r = _removals(h, until)
    days = max(until, 1.0) / 86_400.0
    rate = r.removed / days
    words: list[str] = []
    if not r.removed:
        return [], {}, 0.0, ["no cgroup was removed in the window: only the dying memcgs "
                             "already there are modelled"]
    n = r.removed
    share_shm, share_pc, share_ks = r.with_shmem / n, r.pagecache_only / n, r.with_kstack / n
    # Means of what was left (the removals come aggregated per bucket, not one by one).
    dentries = (max(1, int(r.slab_bytes / r.slab_known / DENTRY.object_size_bytes))
                if r.slab_known else ASSUMED_DENTRIES)
    if not r.slab_known:
        words.append(f"slab left behind is not reported by this kernel's memory.stat: "
                     f"{ASSUMED_DENTRIES} dentries per cgroup assumed (matters before 5.3)")
    pc_pages = _mean_pages(r.file_bytes, r.with_file, 4096, 4096)
    shm_pages = _mean_pages(r.shmem_bytes, r.with_shmem, 4096, 4096)
    ks_threads = _mean_pages(r.kstack_bytes, r.with_kstack, 16384, 16384)
    slab_left = Leftover(Kind.SLAB, dentries, DENTRY)
    classes = []
    for name, share, extra in (
            ("leaves tmpfs", share_shm, (Leftover(Kind.SHMEM, shm_pages),)),
            ("leaves page cache", share_pc, (Leftover(Kind.PAGECACHE, pc_pages),)),
            ("leaves kernel stacks", share_ks,
             (Leftover(Kind.KSTACK, ks_threads, mean_life_seconds=3600.0),)),
            ("leaves only slab", max(0.0, 1 - share_shm - share_pc - share_ks), ())):
        if share <= 0:
            continue
        per_day = rate * share
        classes.append(JobClass(name, per_day, 0.0, (slab_left, *extra),
                                period_seconds=86_400.0 / per_day, start_seconds=0.0))
    words.append(f"{rate:,.0f} cgroups removed per day; {share_pc:.0%} leave page cache "
                 f"(mean {pc_pages * 4} KiB), {share_shm:.0%} leave tmpfs/shmem (mean "
                 f"{shm_pages * 4} KiB), {share_ks:.0%} leave kernel stacks")
    return classes, {"pagecache": share_pc, "shmem": share_shm, "kstack": share_ks}, rate, words


def _thin(job: JobClass, duration: float, cap: int) -> JobClass:
    if job.period_seconds:
        # A timer: the engine draws min(count, span // period + 1) cgroups. Keep `cap` of
        # them, each standing for the run of `weight` it replaces, at the run's mean time.
        n = int(max(0.0, duration - job.start_seconds) // job.period_seconds) + 1
        n = min(n, job.count) if job.count is not None else n
        if n <= cap:
            return job
        k = n / cap
        return replace(job, per_day=job.per_day / k, weight=k, count=cap,
                       period_seconds=job.period_seconds * k,
                       start_seconds=job.start_seconds + (k - 1) / 2 * job.period_seconds)
    n_mean = (job.count if job.count is not None
              else job.per_day * max(0.0, duration - job.start_seconds) / 86_400.0)
    if n_mean <= cap:
        return job
    k = n_mean / cap
    return replace(job, per_day=job.per_day / k, weight=k,
                   count=cap if job.count is not None else None)


def thinned(w: Workload, cap: int = MAX_COHORT) -> Workload:
    """The workload with every class thinned to at most `cap` simulated cgroups.

    Each simulated cgroup then stands for `weight` of them: the engine's cost is bounded by
    the cap, not by how busy the host is or how far ahead it looks. Counts stay expected
    values; thinned classes draw quasi-randomly (engine._last_of), so little noise is added.
    """
    out = [job if job.weight != 1.0 else _thin(job, w.duration_seconds, cap)
           for job in w.classes]
    return replace(w, classes=tuple(out))


def _era_of(h: HostHistory) -> str:
    return h.era if h.era in ERAS else DEFAULT_ERA


def _dying(w: Workload, era: str) -> npt.NDArray[np.float64]:
    """The dying memcgs of a workload in one era, on its grid (counts only, thinned)."""
    if not w.classes:
        return np.zeros(w.steps)
    e = simulate(thinned(w), [era], seed=0, aggregates=False).eras[era]
    return np.asarray(e.dying, dtype=np.float64)


def fit(h: HostHistory, until: float | None = None, step: float | None = None) -> Fit:
    """Fit the workload on [0, until] of the history (all of it by default).

    Cohorts add up: the dying curve of the removed cgroups and those of the memcgs already
    dying (all never freed, all page cache) are simulated once per reclaim rate, and every
    share p of never-freed ones is their weighted sum, not another simulation.
    """
    until = h.times_seconds[-1] if until is None else until
    t_obs, d_obs, _ = _window(h, until)
    step = step or max(60.0, until / 300)
    classes, shares, rate, words = _classes(h, until)
    d0 = round(d_obs[0]) if d_obs else 0
    era = _era_of(h)
    best: Fit | None = None
    obs = np.asarray(d_obs, dtype=np.float64)
    base = Workload(f"fit:{h.host}", tuple(classes), duration_seconds=until, step_seconds=step,
                    cpus=h.cpus, numa_nodes=h.numa_nodes)
    grid = np.arange(base.steps, dtype=np.float64) * step
    # Never freed: the same curve whatever the reclaim rate.
    kept = _dying(replace(base, classes=tuple(_initial(d0, 1.0))), era) / max(d0, 1)
    for mu in MU_GRID:
        w = replace(base, pressure=Pressure(slab_per_day=0.5, pagecache_per_day=mu))
        new = _dying(w, era)
        cache = _dying(replace(w, classes=tuple(_initial(d0, 0.0))), era) / max(d0, 1)
        for p in P_GRID if d0 else [0.0]:
            keep = round(d0 * p)
            model = np.interp(t_obs, grid, new + keep * kept + (d0 - keep) * cache)
            rmse = float(np.sqrt(np.mean((model - obs) ** 2))) if len(obs) else 0.0
            if best is None or rmse < best.rmse:
                best = Fit(replace(w, classes=(*_initial(d0, p), *classes)), rate, mu, d0, p,
                           shares, [], rmse)
    assert best is not None
    best.words = [*words,
                  f"page cache left behind is reclaimed at {best.pagecache_per_day:.3g} per "
                  f"page per day (half-life {math.log(2) / best.pagecache_per_day:.2g} days)",
                  f"{d0} memcgs were already dying at the start; "
                  f"{best.initial_persistent_share:.0%} of them modelled as never freed "
                  "(tmpfs or live references)",
                  f"fit error (RMSE of dying memcgs): {best.rmse:.1f}"]
    return best


def _initial(d0: int, p: float) -> list[JobClass]:
    out = []
    keep = round(d0 * p)
    if keep:
        out.append(JobClass("already dying, never freed", 0, 0.0,
                            (Leftover(Kind.SHMEM, 1),), period_seconds=1e-6, count=keep))
    if d0 - keep:
        out.append(JobClass("already dying, page cache", 0, 0.0,
                            (Leftover(Kind.PAGECACHE, 1),), period_seconds=1e-6,
                            count=d0 - keep))
    return out


def backtest(h: HostHistory) -> Backtest | None:
    """Fit on the first two thirds, predict the rest in the host's era, and score it."""
    span = h.times_seconds[-1] if h.times_seconds else 0.0
    if len(h.times_seconds) < 9 or span <= 0:
        return None
    split = span * 2 / 3
    f = fit(h, until=split)
    w = replace(f.workload, duration_seconds=span)
    era = _era_of(h)
    e = simulate(thinned(w), [era], seed=0, aggregates=False).eras[era]
    idx = [i for i, t in enumerate(h.times_seconds) if t > split]
    pred = np.interp([h.times_seconds[i] for i in idx], e.times_seconds, e.dying)
    obs = np.asarray([h.dying[i] for i in idx])
    err = np.abs(pred - obs)
    nz = obs > 0
    mape = float(np.mean(err[nz] / obs[nz]) * 100) if nz.any() else None
    return Backtest(split, float(err.mean()), mape, float(err.max()), len(idx))


def project(h: HostHistory, days: float, eras: list[str] | None = None) -> Projection:
    """Fit on the whole history, then run every era to `days` past its end."""
    f = fit(h)
    span = h.times_seconds[-1] if h.times_seconds else 0.0
    horizon = span + days * 86_400.0
    # The step grows with the horizon: MAX_STEPS points whether it looks 30 or 90 days ahead.
    w = replace(f.workload, duration_seconds=horizon,
                step_seconds=max(f.workload.step_seconds, horizon / MAX_STEPS))
    r = simulate(thinned(w), eras, seed=0)
    return Projection(f, r, list(h.times_seconds), list(h.dying), horizon, backtest(h))
