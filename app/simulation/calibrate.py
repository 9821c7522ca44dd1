"""Fit a workload to a host's own history, project it in every era, and backtest the fit.

What is fitted, and how:
  * the rate of removed cgroups per day: from the counted churn (HostHistory.churn, which
    includes cgroups that lived less than a tick) where there is any, else from the
    removals seen; an isolated burst (one bucket with most of the window's removals) is
    left out of the rate and said so (`removal_rate`);
  * what removed cgroups leave (shares with page cache, with tmpfs, with kernel stacks;
    mean sizes) from the removed cgroups' last memory.stat, as counts and byte sums per time
    bucket (HostHistory.removals: bounded, however many);
  * the dying memcgs already there at the start of the window: a share p that never goes
    (tmpfs-like) and the rest pinned by page cache;
  * the page-cache reclaim rate (per page, per day), by least squares of the simulated dying
    curve in the host's own era against the observed one, on a log grid.
A fit is flagged (`Fit.flags`) where its reclaim rate sits at an end of the grid, or where
its error is large against the level.
A projection starts from the last observation, in every era: the last observed dying count
is the initial cohort (split into never freed and page-cache pinned by the fit's shares at
the end of the window), and the fitted removals go on. No era passes the memcg-ID limit, and
the moment each reaches it (ENOSPC) is dated (`_capped`). The backtest does exactly this on
the first two thirds and is scored against carrying the last value forward.
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

from app.domain.cost import memcg_cost
from app.domain.eras import DEFAULT_ERA
from app.domain.history import HostHistory, RemovalBucket
from app.simulation.engine import EraResult, SimulationResult, dying_hold_ids, simulate
from app.simulation.eras import ERAS
from app.simulation.workload import DENTRY, JobClass, Kind, Leftover, Pressure, Workload

MU_GRID = [0.01 * (10 ** (k / 4)) for k in range(17)]  # 0.01 .. 100 per day
# p spans its whole domain [0, 1]: a fit at 0 or 1 is a value, not a grid that stopped short,
# so only the reclaim rate is flagged at its grid's ends.
P_GRID = [0.0, 0.25, 0.5, 0.75, 1.0]
ASSUMED_DENTRIES = 100
MAX_COHORT = 2000  # simulated cgroups per class, at most (see `thinned`)
MAX_STEPS = 600  # output points of a projection, whatever its horizon
# The engine's grid over the history replayed before a projection's start and the horizon
# after it, at most: a long history makes the grid coarser, not the run longer.
MAX_RUN_STEPS = 4 * MAX_STEPS
# The memcg ID is 16 bits (MEM_CGROUP_ID_MAX = USHRT_MAX): mkdir fails with ENOSPC once the
# IDs held reach it (kernel-notes.md 3.9 and section 6; moby#29638). Live memcgs always hold
# one; dying ones only before 4.8, where 73f576c04b94 made the private ID recycled at
# offline (engine.dying_hold_ids). Live memcgs are held at their last observed number over
# a projection.
MEMCG_ID_MAX = 65_535
# Assumption: a fit whose RMSE exceeds a quarter of the mean observed level does not
# describe the host's curve well enough to project it without a warning.
RMSE_FLAG_SHARE = 0.25
# Assumption: a fit on less history than the growth figures wait for (growth_min_history
# _seconds, 1 h by default) is flagged: minutes of removals are not a daily rate.
MIN_FIT_SECONDS = 3600.0
# Assumption: one bucket holding more than half of a window's removals, and at least
# BURST_MIN_COUNT of them, in a window of at least BURST_MIN_POINTS observations, is an
# isolated burst (a one-off event, such as 2,000 cgroups removed within a minute), not a
# rate: it is left out of the rate, and said so. Bursts that recur stay in (no bucket then
# holds most of the window).
BURST_SHARE = 0.5
BURST_MIN_COUNT = 50
BURST_MIN_POINTS = 10
# The cgroups already dying are removed within this many seconds before a run's start: less
# than every era's release delay (>= 0.02 s, app/simulation/eras.py), so every era counts all
# of them at the first point, and its own rules apply from the next one.
INITIAL_SPREAD_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class FitFlag:
    """A reason not to trust a fit as it stands: `code` for machines, `message` for people."""

    code: str
    message: str


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
    # The classes of new removals alone (the workload also holds the initial cohort).
    removal_classes: tuple[JobClass, ...] = ()
    # Of the modelled dying memcgs at the end of the window, the share never freed.
    end_persistent_share: float = 0.0
    rate_source: str = "none"  # "counted" (HostHistory.churn), "seen" (removals) or "none"
    mean_level: float = 0.0  # the mean observed dying count over the window
    flags: list[FitFlag] = field(default_factory=list)


@dataclass(slots=True)
class Backtest:
    """Fit on the first two thirds, project from its last observation, score the rest.

    The fit and the projection are the ones `project` uses. The baseline carries the last
    observed value forward; `better` names the one with the smaller mean absolute error.
    """

    split_seconds: float
    mae: float
    mape_percent: float | None
    max_error: float
    points: int
    baseline_mae: float = 0.0
    baseline_mape_percent: float | None = None
    better: str = "model"  # "model", "carry-forward", or "tie" (equal errors)


@dataclass(slots=True)
class Projection:
    """The observed curve, each era's projection from the last observation, the backtest."""

    fit: Fit
    result: SimulationResult
    observed_seconds: list[float]
    observed_dying: list[float]
    horizon_seconds: float
    backtest: Backtest | None
    start_seconds: float = 0.0  # the last observation: where every era's curve starts
    start_dying: int = 0
    live: int = 0  # live memcgs at the last observation, held over the projection
    id_limit: int = MEMCG_ID_MAX


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


def _bucket_width(h: HostHistory) -> float:
    """The history's bucket width: the smallest gap between two observations."""
    gaps = np.diff(np.asarray(h.times_seconds, dtype=np.float64))
    gaps = gaps[gaps > 0]
    return float(gaps.min()) if len(gaps) else 60.0


def removal_rate(h: HostHistory, until: float) -> tuple[float, str, list[str]]:
    """Removed cgroups per day over [0, until], robust to an isolated burst.

    Counted churn (HostHistory.churn: from the kernel's ids and num_cgroups, so it includes
    cgroups that lived less than a tick) is used where the collector counted it; otherwise
    the removals seen. A bucket holding more than BURST_SHARE of the window's removals (and
    at least BURST_MIN_COUNT) is a one-off burst: the rate is taken over the rest of the
    window, and the words say so.
    Returns the rate, its source ("counted", "seen" or "none") and what to say about it.
    """
    churn = [b for b in h.churn if b.seconds <= until]
    words: list[str] = []
    if churn:
        counts = [(b.seconds, b.removed) for b in churn]
        source = "counted"
        inexact = sum(1 for b in churn if not b.exact)
        words.append("removal rate from counted churn (kernel cgroup ids and num_cgroups), "
                      "which includes cgroups that lived less than one tick"
                      + (f"; {inexact} bucket(s) could not be counted whole" if inexact
                         else ""))
    else:
        counts = [(b.seconds, b.removed) for b in h.removals if b.seconds <= until]
        source = "seen" if counts else "none"
        if counts:
            words.append("removal rate from the removals seen (no counted churn in this "
                         "history): cgroups that lived less than one tick are missed")
    total = sum(c for _, c in counts)
    span = max(until, 1.0)
    points = sum(1 for t in h.times_seconds if t <= until)
    if total and points >= BURST_MIN_POINTS:
        at, most = max(counts, key=lambda x: x[1])
        if most > BURST_SHARE * total and most >= BURST_MIN_COUNT:
            total -= most
            span = max(span - _bucket_width(h), 1.0)
            words.append(f"a burst of {most:,} removals at {at / 60:,.0f} min (more than "
                         f"{BURST_SHARE:.0%} of the window's) is left out of the rate: seen "
                         "once, it is an event, not a rate")
    return total / (span / 86_400.0), source, words


def _classes(h: HostHistory, until: float) -> tuple[list[JobClass], dict[str, float], float,
                                                      str, list[str]]:
    r = _removals(h, until)
    rate, source, words = removal_rate(h, until)
    if rate <= 0:
        return [], {}, 0.0, source, [
            *words, "no cgroup was removed in the window (or only one burst): only the "
                    "dying memcgs already there are modelled"]
    n = r.removed
    if not n:
        # Counted, never seen: nothing says what they left. Assumption: one page of page
        # cache each (directory metadata pins a memcg: lab-findings.md), reclaimed as fitted.
        share_shm, share_pc, share_ks = 0.0, 1.0, 0.0
        words.append("no removed cgroup was seen, only counted: each assumed to leave one "
                     "page of page cache")
    else:
        share_shm, share_pc, share_ks = r.with_shmem / n, r.pagecache_only / n, \
            r.with_kstack / n
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
        period = 86_400.0 / per_day
        # The first one half a period in: a run starts at an observation, not at a removal.
        classes.append(JobClass(name, per_day, 0.0, (slab_left, *extra),
                                period_seconds=period, start_seconds=period / 2))
    words.append(f"{rate:,.0f} cgroups removed per day; {share_pc:.0%} leave page cache "
                 f"(mean {pc_pages * 4} KiB), {share_shm:.0%} leave tmpfs/shmem (mean "
                 f"{shm_pages * 4} KiB), {share_ks:.0%} leave kernel stacks")
    return classes, {"pagecache": share_pc, "shmem": share_shm, "kstack": share_ks}, rate, \
        source, words


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
    share p of never-freed ones is their weighted sum, not another simulation. The fit is
    flagged (`flags`) where its reclaim rate sits at an end of MU_GRID while page cache
    matters, or where its RMSE exceeds RMSE_FLAG_SHARE of the mean observed level.
    """
    until = h.times_seconds[-1] if until is None else until
    t_obs, d_obs, _ = _window(h, until)
    step = step or max(60.0, until / 300)
    classes, shares, rate, source, words = _classes(h, until)
    d0 = round(d_obs[0]) if d_obs else 0
    era = _era_of(h)
    best: Fit | None = None
    obs = np.asarray(d_obs, dtype=np.float64)
    base = Workload(f"fit:{h.host}", tuple(classes), duration_seconds=until, step_seconds=step,
                    cpus=h.cpus, numa_nodes=h.numa_nodes, kernel=h.kernel)
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
                           shares, [], rmse, tuple(classes))
    assert best is not None
    best.rate_source = source
    best.mean_level = float(obs.mean()) if len(obs) else 0.0
    # What is left at the end of the window, and how much of it is never freed: the split of
    # the last observation a projection starts from.
    end = simulate(thinned(best.workload), [era], seed=0, aggregates=False).eras[era]
    best.end_persistent_share = min(1.0, end.never_freed / end.dying[-1]) if end.dying[-1] \
        else best.initial_persistent_share
    best.flags = _flags(best, d0)
    if until < MIN_FIT_SECONDS:
        best.flags.append(FitFlag(
            "short_history",
            f"fitted on {until / 60:.0f} min of history, under the {MIN_FIT_SECONDS / 60:.0f} "
            "min the growth figures wait for: rates and reclaim are guesses from minutes, so "
            "treat the projection as a sketch until more history is in"))
    best.words = [*words,
                  f"page cache left behind is reclaimed at {best.pagecache_per_day:.3g} per "
                  f"page per day (half-life {math.log(2) / best.pagecache_per_day:.2g} days)",
                  f"{d0} memcgs were already dying at the start; "
                  f"{best.initial_persistent_share:.0%} of them modelled as never freed "
                  "(tmpfs or live references)",
                  f"fit error (RMSE of dying memcgs): {best.rmse:.1f} on a mean level of "
                  f"{best.mean_level:,.1f}"]
    return best


def _flags(f: Fit, d0: int) -> list[FitFlag]:
    """Why a fit should not be trusted as it stands (FitFlag codes are stable API)."""
    out = []
    keep = round(d0 * f.initial_persistent_share)
    pagecache_matters = d0 - keep > 0 or f.shares.get("pagecache", 0.0) > 0
    if pagecache_matters and f.pagecache_per_day in (MU_GRID[0], MU_GRID[-1]):
        side = "fastest" if f.pagecache_per_day == MU_GRID[-1] else "slowest"
        out.append(FitFlag(
            "reclaim_rate_at_grid_edge",
            f"the page-cache reclaim rate hit the {side} end of its grid "
            f"({f.pagecache_per_day:.3g} per page per day, grid {MU_GRID[0]:.3g} to "
            f"{MU_GRID[-1]:.3g}): the true rate may lie beyond it, so the curves of "
            "page-cache-pinned memcgs are bounds, not fits"))
    level = max(f.mean_level, 1.0)
    if f.rmse > RMSE_FLAG_SHARE * level:
        out.append(FitFlag(
            "large_error",
            f"the fit's error (RMSE {f.rmse:,.1f}) is {f.rmse / level:.0%} of the mean "
            f"observed level ({f.mean_level:,.1f}), over the {RMSE_FLAG_SHARE:.0%} it should "
            "be under: the model does not describe this host's curve well (a burst, a "
            "change of workload, or too little history)"))
    return out


def _initial(d0: int, p: float) -> list[JobClass]:
    """d0 memcgs already dying, removed just before the run starts: a share p never freed
    (tmpfs or a live reference), the rest pinned by one page of page cache each."""
    out = []
    keep = round(d0 * p)
    for name, n, left in (("already dying, never freed", keep, Leftover(Kind.SHMEM, 1)),
                          ("already dying, page cache", d0 - keep,
                           Leftover(Kind.PAGECACHE, 1))):
        if n:
            out.append(JobClass(name, 0, 0.0, (left,),
                                period_seconds=INITIAL_SPREAD_SECONDS / n, count=n,
                                start_seconds=-INITIAL_SPREAD_SECONDS))
    return out


def _capped(e: EraResult, live: int, hold: bool) -> None:
    """Hold an era's dying memcgs under the ID limit and date its ENOSPC.

    Where dying memcgs hold IDs (`hold`: kernels before 4.8), live and dying memcgs share
    the 16-bit ID space: at most MEMCG_ID_MAX - live can be dying. Elsewhere only live
    memcgs hold IDs: the dying count is not capped, and ENOSPC is the engine's (live
    memcgs alone at the limit). Past the limit mkdir fails and no new cgroup is made, so the
    dying count stays at the limit; the figures that follow the count (cost, zombie caches,
    by pin) are scaled with it. The engine's own ENOSPC time (`enospc_seconds`, set by the
    caller) is kept when it is earlier.
    """
    if not hold:
        if live >= MEMCG_ID_MAX:
            e.enospc_seconds = float(e.times_seconds[0])
        return
    limit = max(0, MEMCG_ID_MAX - live)
    t = np.asarray(e.times_seconds, dtype=np.float64)
    d = np.asarray(e.dying, dtype=np.float64)
    at: float | None = None
    over = np.nonzero(d >= limit)[0]
    if len(over):
        k = int(over[0])
        # Linear between the last point under the limit and the first at it.
        at = float(t[k]) if k == 0 else float(
            t[k - 1] + (limit - d[k - 1]) / (d[k] - d[k - 1]) * (t[k] - t[k - 1]))
    if e.enospc_seconds is not None:
        at = e.enospc_seconds if at is None else min(at, e.enospc_seconds)
    capped = np.minimum(d, limit)
    scale = np.where(d > 0, capped / np.maximum(d, 1.0), 1.0)
    e.dying = np.rint(capped).astype(np.int64).tolist()
    e.dying_by_pin = {k: np.minimum(np.asarray(v), capped).astype(np.int64).tolist()
                      for k, v in e.dying_by_pin.items()}
    for name in ("dying_cost_bytes", "zombie_caches", "sysfs_dirs", "memcg_refs"):
        setattr(e, name, (np.asarray(getattr(e, name), dtype=np.float64) * scale).tolist())
    e.enospc_seconds = at


def _split(job: JobClass, t0: float) -> tuple[JobClass | None, JobClass | None]:
    """A timer class as its cgroups removed up to t0 and those removed after it."""
    assert job.period_seconds, "fitted classes are timers"
    n = int((t0 - job.start_seconds) // job.period_seconds) + 1 if t0 >= job.start_seconds \
        else 0
    if job.count is not None:
        n = min(n, job.count)
    rest = None if job.count is None else job.count - n
    before = replace(job, count=n) if n else None
    after = None if rest == 0 else replace(
        job, count=rest, start_seconds=job.start_seconds + n * job.period_seconds)
    return before, after


_FLOAT_SERIES = ("dying_cost_bytes", "zombie_caches", "sysfs_dirs", "leftover_slab_bytes",
                 "cache_refs", "memcg_refs", "parent_refs")


def _compose(old: EraResult, new: EraResult, at: npt.NDArray[np.float64], d: int,
             per_memcg: float) -> EraResult:
    """One era from the last observation: the d memcgs dying now, and the removals to come.

    `old` is the fitted workload's cgroups removed up to now, `new` those removed later, in
    the era, on the engine's grid. The d dying now age as the era's own dying population
    does at this point of the workload (its curve from now, scaled to start at d): same
    mix of pins and ages as the fit says, the era's rules. Where the era keeps none of them
    dying (LRU reparenting frees page cache and tmpfs pins at offline), they are gone after
    the first point. `per_memcg` prices the d at the first point in that case.
    """
    def on(series: list[int] | list[float], t: list[float]) -> npt.NDArray[np.float64]:
        return np.interp(at, t, np.asarray(series, dtype=np.float64))
    o = on(old.dying, old.times_seconds)
    keep = o[0] >= 0.5
    w = d / o[0] if keep else 0.0

    def mix(a: list[int] | list[float], b: list[int] | list[float]) -> npt.NDArray[np.float64]:
        later = on(b, new.times_seconds)
        later[0] = 0.0  # nothing removed after now is there now (the grids differ)
        return on(a, old.times_seconds) * w + later
    dying = mix(old.dying, new.dying)
    if not keep:
        dying[0] += d
    e = replace(new, times_seconds=at.tolist(), live=[0] * len(at),
                dying=np.rint(dying).astype(np.int64).tolist(),
                dying_by_pin={k: np.rint(mix(old.dying_by_pin[k], v)).astype(np.int64)
                              .tolist() for k, v in new.dying_by_pin.items()},
                dying_in_release=np.rint(mix(old.dying_in_release, new.dying_in_release))
                .astype(np.int64).tolist(),
                never_freed=round(old.never_freed * w + new.never_freed))
    for name in _FLOAT_SERIES:
        setattr(e, name, mix(getattr(old, name), getattr(new, name)).tolist())
    if not keep and d and e.dying_cost_bytes and any(e.dying_cost_bytes):
        e.dying_cost_bytes[0] += d * per_memcg
    e.freed_total = max(0, round(d + new.created_total - dying[-1]))
    # The engine's ENOSPC of the removals to come alone, in absolute time: the whole
    # curve, higher, is at the limit no later.
    e.enospc_seconds = None if new.enospc_seconds is None else float(new.enospc_seconds)
    return e


def _per_memcg(r: SimulationResult, cpus: int, nodes: int) -> float:
    """What one dying memcg costs in a run (its dying-cost over its dying count where it has
    any, else the per-CPU struct sizes of app.domain.cost)."""
    for e in r.eras.values():
        for c, n in zip(e.dying_cost_bytes, e.dying, strict=True):
            if n > 0 and c > 0:
                return c / n
    return float(memcg_cost("6.10", cpus, nodes).per_memcg_bytes)


def _forward(h: HostHistory, f: Fit, until: float, seconds: float, eras: list[str] | None,
             aggregates: bool = True) -> tuple[SimulationResult, float, int, int]:
    """Every era `seconds` on from the last observation at or before `until`.

    The fitted workload is run from the start of the history to the horizon twice in each
    era: its cgroups removed up to the observation, and those removed after it. The first
    gives how the memcgs dying at the observation age (what pins them, how old they are),
    applied to the observed count; the second adds the removals to come (`_compose`). So
    every era starts at the observed count and follows its own rules from there; none
    passes the ID limit (`_capped`). Returns the result (times since the history's start),
    the observation's time, its dying count and its live memcgs.
    """
    t_obs, d_obs, idx = _window(h, until)
    t0, d_last = t_obs[-1], round(d_obs[-1])
    live = round(h.live[idx[-1]]) if h.live else 0
    fstep = f.workload.step_seconds
    points = max(1, min(MAX_STEPS, math.ceil(seconds / fstep)))
    at = t0 + np.linspace(0.0, seconds, points + 1)
    total = t0 + seconds
    step = max(fstep, seconds / MAX_STEPS, total / MAX_RUN_STEPS)
    base = replace(f.workload, duration_seconds=total, step_seconds=step)
    parts = [_split(j, t0) for j in base.classes]
    runs = [simulate(thinned(replace(base, classes=tuple(j for j in side if j is not None))),
                     eras, seed=0, aggregates=aggregates)
            for side in zip(*parts, strict=True)] if parts else []
    if not runs:  # nothing dying at the start and nothing removed: an empty workload
        runs = [simulate(base, eras, seed=0, aggregates=aggregates)] * 2
    old, new = runs
    price = _per_memcg(old, h.cpus, h.numa_nodes) if aggregates else 0.0
    out = SimulationResult(f"projection:{h.host}", 0, float(at[1] - at[0]))
    for name in new.eras:
        e = _compose(old.eras[name], new.eras[name], at, d_last, price)
        _capped(e, live, dying_hold_ids(ERAS[name], f.workload.kernel))
        out.eras[name] = e
    return out, t0, d_last, live


def backtest(h: HostHistory) -> Backtest | None:
    """Fit on the first two thirds and project from its last observation, as `project` does,
    in the host's era; score it on the rest against carrying the last value forward."""
    span = h.times_seconds[-1] if h.times_seconds else 0.0
    if len(h.times_seconds) < 9 or span <= 0:
        return None
    split = span * 2 / 3
    f = fit(h, until=split)
    era = _era_of(h)
    t_obs, _, _ = _window(h, split)
    r, t0, d_last, _ = _forward(h, f, split, max(span - t_obs[-1], 1.0), [era], False)
    e = r.eras[era]
    idx = [i for i, t in enumerate(h.times_seconds) if t > t0]
    pred = np.interp([h.times_seconds[i] for i in idx], e.times_seconds, e.dying)
    obs = np.asarray([h.dying[i] for i in idx], dtype=np.float64)
    err, base = np.abs(pred - obs), np.abs(d_last - obs)
    nz = obs > 0
    mape = float(np.mean(err[nz] / obs[nz]) * 100) if nz.any() else None
    bmape = float(np.mean(base[nz] / obs[nz]) * 100) if nz.any() else None
    mae, bmae = float(err.mean()), float(base.mean())
    return Backtest(split, mae, mape, float(err.max()), len(idx), bmae, bmape,
                    "model" if mae < bmae else "carry-forward" if mae > bmae else "tie")


def project(h: HostHistory, days: float, eras: list[str] | None = None) -> Projection:
    """Fit on the whole history, then run every era `days` on from its last observation.

    Every era starts at the last observed dying count (it is the same host today) and
    diverges by its own rules; no era exceeds the memcg ID limit (`_capped`).
    """
    f = fit(h)
    r, t0, d_last, live = _forward(h, f, h.times_seconds[-1], days * 86_400.0, eras)
    f.words.append(f"projected from the last observation: {d_last:,} dying memcgs, "
                   f"{f.end_persistent_share:.0%} of them modelled as never freed; live "
                   f"memcgs held at {live:,}; where dying memcgs hold memcg IDs (kernels "
                   f"before 4.8), at most {max(0, MEMCG_ID_MAX - live):,} can be dying (the "
                   f"{MEMCG_ID_MAX} memcg-ID limit); since 4.8 the ID is recycled at offline "
                   "(73f576c04b94), so dying memcgs cost memory, not IDs (swap-out records "
                   "still hold IDs: not modelled)")
    return Projection(f, r, list(h.times_seconds), list(h.dying), t0 + days * 86_400.0,
                      backtest(h), t0, d_last, live)
