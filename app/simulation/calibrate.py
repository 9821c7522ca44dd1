"""Fit a workload to a host's own history, project it in every era, and backtest the fit.

What is fitted, and how:
  * the rate of removed cgroups per day, and what they leave (shares with page cache, with
    tmpfs, with kernel stacks; median sizes) from the removed cgroups' last memory.stat;
  * the dying memcgs already there at the start of the window: a share p that never goes
    (tmpfs-like) and the rest pinned by page cache;
  * the page-cache reclaim rate (per page, per day), by least squares of the simulated dying
    curve in the host's own era against the observed one, on a log grid.
Slab left behind is taken from memory.stat where the kernel reports it (cgroup2); v1 hosts do
not, and 100 dentries per cgroup are assumed (this only matters for eras before 5.3, where
slab pins). Everything assumed is said in `words`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from statistics import median

import numpy as np

from app.domain.history import HostHistory
from app.simulation.engine import SimulationResult, simulate
from app.simulation.eras import ERAS
from app.simulation.workload import DENTRY, JobClass, Kind, Leftover, Pressure, Workload

MU_GRID = [0.01 * (10 ** (k / 4)) for k in range(17)]  # 0.01 .. 100 per day
P_GRID = [0.0, 0.25, 0.5, 0.75, 1.0]
ASSUMED_DENTRIES = 100


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


def _classes(h: HostHistory, until: float, span: float) -> tuple[list[JobClass], dict[str, float],
                                                                 float, list[str]]:
    rem = [i for i, t in enumerate(h.removed_seconds) if t <= until]
    days = max(until, 1.0) / 86_400.0
    rate = len(rem) / days
    words: list[str] = []
    if not rem:
        return [], {}, 0.0, ["no cgroup was removed in the window: only the dying memcgs "
                             "already there are modelled"]
    files = [h.removed_file_bytes[i] or 0 for i in rem]
    shm = [h.removed_shmem_bytes[i] or 0 for i in rem]
    slab = [h.removed_slab_bytes[i] for i in rem]
    kst = [h.removed_kstack_bytes[i] or 0 for i in rem]
    n = len(rem)
    share_shm = sum(1 for x in shm if x > 0) / n
    share_pc = sum(1 for f, s in zip(files, shm, strict=True) if f > 0 and s == 0) / n
    share_ks = sum(1 for x in kst if x > 0) / n
    known_slab = [x for x in slab if x is not None]
    dentries = (max(1, int(median(known_slab) / DENTRY.object_size_bytes)) if known_slab
                else ASSUMED_DENTRIES)
    if not known_slab:
        words.append(f"slab left behind is not reported by this kernel's memory.stat: "
                     f"{ASSUMED_DENTRIES} dentries per cgroup assumed (matters before 5.3)")
    pc_pages = max(1, int(median([f for f in files if f > 0] or [4096]) // 4096))
    shm_pages = max(1, int(median([s for s in shm if s > 0] or [4096]) // 4096))
    ks_threads = max(1, int(median([k for k in kst if k > 0] or [16384]) // 16384))
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
                 f"(median {pc_pages * 4} KiB), {share_shm:.0%} leave tmpfs/shmem (median "
                 f"{shm_pages * 4} KiB), {share_ks:.0%} leave kernel stacks")
    return classes, {"pagecache": share_pc, "shmem": share_shm, "kstack": share_ks}, rate, words


def fit(h: HostHistory, until: float | None = None, step: float | None = None) -> Fit:
    """Fit the workload on [0, until] of the history (all of it by default)."""
    until = h.times_seconds[-1] if until is None else until
    t_obs, d_obs, _ = _window(h, until)
    step = step or max(60.0, until / 300)
    classes, shares, rate, words = _classes(h, until, until)
    d0 = round(d_obs[0]) if d_obs else 0
    best: Fit | None = None
    obs = np.asarray(d_obs, dtype=np.float64)
    for p in P_GRID if d0 else [0.0]:
        for mu in MU_GRID:
            init = _initial(d0, p)
            w = Workload(f"fit:{h.host}", tuple([*init, *classes]),
                         Pressure(slab_per_day=0.5, pagecache_per_day=mu),
                         duration_seconds=until, step_seconds=step, cpus=h.cpus,
                         numa_nodes=h.numa_nodes)
            r = simulate(w, [h.era if h.era in ERAS else "objcg-kmem"], seed=0)
            e = next(iter(r.eras.values()))
            model = np.interp(t_obs, e.times_seconds, e.dying)
            rmse = float(np.sqrt(np.mean((model - obs) ** 2))) if len(obs) else 0.0
            if best is None or rmse < best.rmse:
                best = Fit(w, rate, mu, d0, p, shares, [], rmse)
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
    era = h.era if h.era in ERAS else "objcg-kmem"
    e = simulate(w, [era], seed=0).eras[era]
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
    w = replace(f.workload, duration_seconds=horizon,
                step_seconds=max(f.workload.step_seconds, horizon / 600))
    r = simulate(w, eras, seed=0)
    return Projection(f, r, list(h.times_seconds), list(h.dying), horizon, backtest(h))
