"""The fast engine: every era of a workload, vectorised over cgroups.

Each removed cgroup's memcg is freed when the last thing that pins it in that era is gone.
What pins it is sampled exactly, without simulating objects one by one: the moment the last
of n independent exponential lifetimes ends has the closed form  T = -ln(1 - U^(1/n)) / rate,
so one draw per cgroup and pin gives the same distribution as n per-object draws (the
per-object reference in tests/simulation/reference.py checks this). A slab page is freed when
its last object is, so a cgroup's slab pin lasts until its last object of every cache is gone.

Aggregates (pages, objects, zombie caches, sysfs directories, refcounts) are expected values:
the histogram of removal times on the output grid, convolved with each leftover's survival
function, and cut off by operator events (drop_caches, deleting files).

A class may be thinned (JobClass.weight > 1: each drawn cgroup stands for that many, as the
calibration does for busy hosts), so the cost is bounded by the cgroups drawn, not the
cgroups a host removes; every count and aggregate is scaled back by the weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.domain.cost import memcg_cost
from app.simulation.eras import ERAS, EraModel, SlabPin
from app.simulation.workload import Event, JobClass, Kind, Leftover, Workload

Array = npt.NDArray[np.float64]
PAGE = 4096
KSTACK_PAGES = 4  # 16 KiB kernel stacks on x86_64
# A per-memcg kmem_cache: the struct, a kmem_cache_cpu per CPU, a kmem_cache_node per node
# (estimate from struct sizes in 5.x mm/slub.c: ~400 B + 64 B per CPU + 200 B per node).
CACHE_STRUCT_BYTES, CACHE_PER_CPU_BYTES, CACHE_PER_NODE_BYTES = 400, 64, 200
PINS = ("slab", "pagecache", "shmem", "kstack")


@dataclass(slots=True)
class EraResult:
    """One era's outputs on the workload's time grid."""

    era: str
    times_seconds: list[float]
    live: list[int]
    dying: list[int]
    dying_by_pin: dict[str, list[int]]  # overlapping: a memcg may be pinned by several
    dying_in_release: list[int]  # nothing pins it any more: RCU and work items in flight
    dying_cost_bytes: list[float]
    zombie_caches: list[float]
    sysfs_dirs: list[float]
    leftover_slab_bytes: list[float]
    cache_refs: list[float]  # percpu_ref counts of per-memcg caches (v4 5/7, 5.3)
    memcg_refs: list[float]  # css refs held on dying memcgs by what pins them
    parent_refs: list[float]  # css refs on parents held by reparented zombie caches (5.3)
    created_total: int
    freed_total: int
    never_freed: int  # still pinned at the end by something that never goes on its own
    # When live + dying memcgs first reach the 65535 memcg-ID limit (mkdir fails with
    # ENOSPC from then on), seconds from the start; None if never within the run.
    enospc_seconds: float | None = None


@dataclass(slots=True)
class SimulationResult:
    """Every requested era of one workload, same seed."""

    workload: str
    seed: int
    step_seconds: float
    eras: dict[str, EraResult] = field(default_factory=dict)


@dataclass(slots=True)
class _Cohort:
    """The cgroups of one class: when they came and went, and what pins each, until when.

    `release` is per pin group: leftovers of one kind that go away the same way (same rate,
    same events) share one draw, because the last of their objects is the last of all of
    them: T = max over groups of the last-of-sum(n) lifetime. `group_of` maps a leftover to
    its group.
    """

    job: JobClass
    create: Array
    offline: Array
    release: dict[int, Array]  # pin group -> absolute time it is all gone (inf: never)
    group_of: dict[int, int]  # leftover index -> pin group
    group_kind: dict[int, Kind]


def _arrivals(job: JobClass, duration: float, rng: np.random.Generator) -> Array:
    if job.period_seconds:
        n = int(max(0.0, duration - job.start_seconds) // job.period_seconds) + 1
        if job.count is not None:
            n = min(n, job.count)
        return job.start_seconds + np.arange(n, dtype=np.float64) * job.period_seconds
    span = max(0.0, duration - job.start_seconds)
    n = int(rng.poisson(job.per_day * span / 86_400.0)) if job.count is None else job.count
    return np.sort(job.start_seconds + rng.uniform(0.0, span, n))


MIN_RATE = 1e-12  # per second: below this nothing goes within any horizon we simulate


def rate_of(left: Leftover, workload: Workload) -> float:
    """Per-second hazard of one object/page/thread of a leftover (0: never on its own)."""
    if left.mean_life_seconds is not None:
        rate = 0.0 if left.mean_life_seconds <= 0 else 1.0 / left.mean_life_seconds
    elif left.kind is Kind.SLAB:
        rate = workload.pressure.slab_per_day / 86_400.0
    elif left.kind is Kind.PAGECACHE:
        rate = workload.pressure.pagecache_per_day / 86_400.0
    else:
        rate = 0.0  # shmem waits for deletion; threads without a lifetime never exit
    return rate if rate >= MIN_RATE else 0.0


# Irrational steps of the quasi-random draws, one per pin group (fractional parts of the
# square roots of primes: a Kronecker sequence, evenly spread in every dimension).
KRONECKER = [math.sqrt(p) % 1 for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29)]


def _last_of(n: int, rate: float, size: int, rng: np.random.Generator,
             quasi: int | None = None) -> Array:
    """When the last of n exponential(rate) lifetimes ends, for `size` independent groups.

    `quasi` (thinned classes; the pin group's number): the uniform draws are a randomly
    shifted Kronecker sequence in arrival order, not independent. Each cgroup's time keeps
    its distribution, but any run of consecutive cgroups follows it closely, so a thinned
    class's counts carry little sampling noise.
    """
    if n <= 0:
        return np.zeros(size)
    if rate <= 0:
        return np.full(size, np.inf)
    if quasi is not None:
        step = KRONECKER[quasi % len(KRONECKER)]
        u: Array = np.mod(rng.random() + np.arange(size, dtype=np.float64) * step, 1.0)
    else:
        u = rng.random(size)
    # T = -ln(1 - U^(1/n)) / rate; log1p/expm1 keep precision for large n and small U.
    return -np.log(-np.expm1(np.log(np.maximum(u, 1e-300)) / n)) / rate


def _affected(ev: Event, left: Leftover, job: JobClass) -> bool:
    if ev.kind == "drop_caches":
        if left.mean_life_seconds is not None:
            return False  # held by a live user: reclaim cannot free it
        if left.kind is Kind.PAGECACHE:
            return ev.mode in (1, 3)
        if left.kind is Kind.SLAB:
            return ev.mode in (2, 3) and left.cache is not None and left.cache.reclaimable
        return False
    if ev.kind == "delete_files":
        return left.kind in (Kind.PAGECACHE, Kind.SHMEM) and ev.job in (None, job.name)
    return False


def _cohort(job: JobClass, w: Workload, rng: np.random.Generator) -> _Cohort:
    create = _arrivals(job, w.duration_seconds, rng)
    offline = create + job.lifetime_seconds
    keys: dict[tuple[Kind, float, tuple[float, ...]], int] = {}
    amounts: dict[int, int] = {}
    group_of: dict[int, int] = {}
    group_kind: dict[int, Kind] = {}
    for i, left in enumerate(job.leftovers):
        cuts = tuple(sorted(ev.at_seconds for ev in w.events if _affected(ev, left, job)))
        key = (left.kind, rate_of(left, w), cuts)
        g = keys.setdefault(key, len(keys))
        group_of[i] = g
        group_kind[g] = left.kind
        amounts[g] = amounts.get(g, 0) + left.amount
    release: dict[int, Array] = {}
    for (_kind, rate, cuts), g in keys.items():
        t = offline + _last_of(amounts[g], rate, len(create), rng,
                               g if job.weight != 1.0 else None)
        for cut in cuts:
            # Freed at the event if it existed by then; created later, it is untouched.
            hit = create <= cut
            t = np.where(hit, np.minimum(t, np.maximum(cut, offline)), t)
        release[g] = t
    return _Cohort(job, create, offline, release, group_of, group_kind)


def _pins_in(era: EraModel, kind: Kind) -> bool:
    """Whether what a removed cgroup left of this kind keeps its memcg dying in the era."""
    if kind is Kind.SLAB:
        return era.slab_pin is not SlabPin.NONE
    if kind in (Kind.PAGECACHE, Kind.SHMEM):
        return era.lru_pins
    return era.kmem_pages_pin


def _counts(times: Array, starts: Array, ends: Array) -> Array:
    """How many [start, end) intervals hold each time."""
    s = np.sort(starts)
    e = np.sort(ends)
    return (np.searchsorted(s, times, "right") - np.searchsorted(e, times, "right")).astype(
        np.float64)


def _expected(times: Array, cohort: _Cohort, left: Leftover, w: Workload,
              survival: Callable[[Array], Array]) -> Array:
    """Expected sum over a cohort of survival(time since removal), cut by its events.

    Removals are binned on the grid (bucket k holds those in (t[k-1], t[k]]) and the
    histogram is convolved with the survival function sampled at the grid's lags; cgroups
    reached by an event (created before it) are a separate group whose sum drops to zero at
    the event.
    """
    out = np.zeros_like(times)
    if len(cohort.offline) == 0:
        return out
    k_len = len(times)
    kernel = survival(times - times[0])
    bucket = np.clip(np.ceil(cohort.offline / w.step_seconds).astype(np.int64), 0, k_len - 1)
    cuts = sorted(ev.at_seconds for ev in w.events if _affected(ev, left, cohort.job))
    # group g < len(cuts): first reached by cuts[g]; group len(cuts): never reached
    group = np.searchsorted(np.asarray(cuts, dtype=np.float64), cohort.create, "left")
    for g in np.unique(group):
        hist = np.bincount(bucket[group == g], minlength=k_len).astype(np.float64)
        part = np.convolve(hist, kernel)[:k_len]
        if g < len(cuts):
            part = np.where(times >= cuts[g], 0.0, part)
        out += part
    return out


def _objects(n: int, rate: float) -> Callable[[Array], Array]:
    return lambda tau: n * np.exp(-rate * tau)


def _nonempty(n: int, rate: float) -> Callable[[Array], Array]:
    if rate <= 0:
        return lambda tau: np.ones_like(tau)
    return lambda tau: 1.0 - (1.0 - np.exp(-rate * tau)) ** n


def _pages(n: int, per: int, rate: float) -> Callable[[Array], Array]:
    full, rest = divmod(n, max(1, per))
    if rate <= 0:
        return lambda tau: np.full_like(tau, float(full + (1 if rest else 0)))

    def f(tau: Array) -> Array:
        gone = 1.0 - np.exp(-rate * tau)
        out = full * (1.0 - gone ** per)
        if rest:
            out = out + (1.0 - gone ** rest)
        return np.asarray(out, dtype=np.float64)
    return f


def simulate(w: Workload, eras: Sequence[str | EraModel] | None = None, seed: int = 0,
             progress: Callable[[str], None] | None = None,
             aggregates: bool = True) -> SimulationResult:
    """Run a workload in each era (all six by default). Same seed, same result.

    Eras are names of the registry or Era records (a record with other facts runs by those
    facts: the selftests flip one to see the outcome follow).
    `aggregates=False` computes only the live and dying memcgs, leaving the rest (by pin,
    in release, pages, caches, refcounts) at zero: what a fit needs, at a fraction of the cost.
    """
    given = list(eras) if eras else list(ERAS)
    unknown = [e for e in given if isinstance(e, str) and e not in ERAS]
    if unknown:
        raise ValueError(f"unknown era(s) {', '.join(unknown)}; known: {', '.join(ERAS)}")
    models = {m.name: m for m in (ERAS[e] if isinstance(e, str) else e for e in given)}
    rng = np.random.default_rng(seed)
    cohorts = [_cohort(job, w, rng) for job in w.classes]
    times = np.arange(w.steps, dtype=np.float64) * w.step_seconds
    cost = memcg_cost("6.10", w.cpus, w.numa_nodes).per_memcg_bytes
    cache_cost = CACHE_STRUCT_BYTES + CACHE_PER_CPU_BYTES * w.cpus + \
        CACHE_PER_NODE_BYTES * w.numa_nodes
    # Era-independent expectations, computed once per leftover.
    expect: dict[tuple[int, int, str], Array] = {}
    for ci, c in enumerate(cohorts if aggregates else []):
        for li, left in enumerate(c.job.leftovers):
            r = rate_of(left, w)
            if left.kind is Kind.SLAB and left.cache is not None:
                expect[ci, li, "objects"] = _expected(times, c, left, w, _objects(left.amount, r))
                expect[ci, li, "pages"] = _expected(
                    times, c, left, w, _pages(left.amount, left.cache.objs_per_slab, r))
                expect[ci, li, "nonempty"] = _expected(times, c, left, w,
                                                       _nonempty(left.amount, r))
            else:
                expect[ci, li, "units"] = _expected(times, c, left, w, _objects(left.amount, r))
    out = SimulationResult(w.name, seed, w.step_seconds)
    for name, model in models.items():
        if progress is not None:
            progress(name)
        out.eras[name] = _era(model, w, cohorts, times, expect, cost, cache_cost)
    return out


def _ints(a: Array) -> list[int]:
    # Counts are whole numbers unless a class is thinned (weight != 1): round, not truncate.
    out: list[int] = np.rint(a).astype(np.int64).tolist()
    return out


def _era(era: EraModel, w: Workload, cohorts: list[_Cohort], times: Array,
         expect: dict[tuple[int, int, str], Array], cost: int, cache_cost: int) -> EraResult:
    zeros = np.zeros_like(times)
    live, dying, in_release = zeros.copy(), zeros.copy(), zeros.copy()
    by_pin = {p: zeros.copy() for p in PINS}
    zombies, sysfs, slab_bytes = zeros.copy(), zeros.copy(), zeros.copy()
    cache_refs, memcg_refs, parent_refs = zeros.copy(), zeros.copy(), zeros.copy()
    created = freed = never = 0
    gp = 0.03  # one RCU grace period, seconds (a few jiffies at HZ=250)
    for ci, c in enumerate(cohorts):
        n = len(c.create)
        if n == 0:
            continue
        wt = c.job.weight
        created += round(n * wt)
        pinned_until = c.offline.copy()
        slab_caches = [li for li, lf in enumerate(c.job.leftovers) if lf.kind is Kind.SLAB]
        per_kind: dict[Kind, Array] = {}
        for g, kind in c.group_kind.items():
            if _pins_in(era, kind):
                pinned_until = np.maximum(pinned_until, c.release[g])
                per_kind[kind] = np.maximum(per_kind.get(kind, c.offline), c.release[g])
        for kind, until in per_kind.items() if expect else ():
            by_pin[kind.value] += wt * _counts(times, c.offline, until)
        delay = era.release_delay_seconds
        if era.slab_pin is SlabPin.CACHE and slab_caches:
            # drained -> percpu_ref_kill (atomic after a grace period) -> zero -> RCU -> work
            delay += gp * (era.deactivate_grace_periods + era.shutdown_grace_periods + 1)
        free = np.where(np.isinf(pinned_until), np.inf,
                        np.maximum(pinned_until + delay, c.offline + era.release_delay_seconds))
        live += wt * _counts(times, c.create, c.offline)
        dying_c = wt * _counts(times, c.offline, free)
        dying += dying_c
        freed += round(int((free <= times[-1]).sum()) * wt)
        never += round(int(np.isinf(free).sum()) * wt)
        if not expect:
            continue  # live and dying only (simulate(aggregates=False))
        in_release += wt * _counts(times, np.where(np.isinf(pinned_until), np.inf,
                                                   pinned_until), free)
        live_caches = wt * _counts(times, c.create, c.offline) * len(slab_caches)
        for li in slab_caches:
            left = c.job.leftovers[li]
            assert left.cache is not None
            per_page = (1 << left.cache.order)
            pages = wt * expect[ci, li, "pages"]
            nonempty = wt * expect[ci, li, "nonempty"]
            objects = wt * expect[ci, li, "objects"]
            if era.per_memcg_caches:
                slab_bytes += pages * per_page * PAGE
                if era.slab_pin is SlabPin.PAGE:
                    # Caches are destroyed only with their memcg: zombies while it is dying.
                    zombies += dying_c
                    sysfs += dying_c if era.sysfs_child_dirs else 0.0
                    memcg_refs += pages * per_page  # css refs per charged 4 KiB page
                else:
                    zombies += nonempty
                    sysfs += nonempty if era.sysfs_child_dirs else 0.0
                    cache_refs += pages * per_page  # 1 << order per charged slab page
                    if era.slab_pin is SlabPin.CACHE:
                        memcg_refs += nonempty  # one css ref per non-empty cache
                    if era.caches_reparented:
                        parent_refs += nonempty
            else:
                slab_bytes += objects * left.cache.object_size_bytes
        if era.per_memcg_caches and era.sysfs_child_dirs:
            sysfs += live_caches
        for li, left in enumerate(c.job.leftovers):
            if left.kind is Kind.SLAB or not _pins_in(era, left.kind):
                continue
            units = wt * expect[ci, li, "units"]
            memcg_refs += units * (KSTACK_PAGES if left.kind is Kind.KSTACK else 1)
    return EraResult(
        era=era.name, times_seconds=times.tolist(), live=_ints(live), dying=_ints(dying),
        dying_by_pin={p: _ints(v) for p, v in by_pin.items()},
        dying_in_release=_ints(in_release),
        dying_cost_bytes=(dying * cost + zombies * cache_cost).tolist(),
        zombie_caches=zombies.tolist(), sysfs_dirs=sysfs.tolist(),
        leftover_slab_bytes=slab_bytes.tolist(), cache_refs=cache_refs.tolist(),
        memcg_refs=memcg_refs.tolist(), parent_refs=parent_refs.tolist(),
        created_total=created, freed_total=freed, never_freed=never)


# What a run costs, from the workload alone (before anything runs). Each term follows one
# loop of the engine above; the weights are nanoseconds per element on a 2-core x86_64 (fit
# by bench/simulations.py --fit: within about 1.5x of the measured time for runs over 1 s).
WORK_WEIGHTS = {"cgroups": 10.0, "cgroups_events": 57.0, "steps_squared": 0.6,
                "steps_eras": 150.0}
WORK_BASE = 20e6  # the fixed part of a run (about 20 ms)


@dataclass(frozen=True, slots=True)
class Work:
    """The estimated cost of a run in work units (about 1 ns of CPU each), term by term.

    * cgroups: drawing each class's cgroups and, in every era, sorting their removal and
      release times (cgroups x (pin groups + log cgroups) x eras);
    * cgroups_events: binning each leftover's removals per event (cgroups x leftovers x
      events that reach them);
    * steps_squared: convolving each leftover's removals with its survival curve (leftovers x
      events x steps^2);
    * steps_eras: each leftover's curves in every era (leftovers x steps x eras).
    """

    cgroups: float  # cgroups the classes create over the horizon, summed
    steps: int
    eras: int
    leftovers: int
    terms: dict[str, float]

    @property
    def total(self) -> float:
        """All terms and the fixed base, in work units."""
        return WORK_BASE + sum(self.terms.values())


def expected_cgroups(job: JobClass, duration: float) -> float:
    """How many cgroups a class creates over the horizon (the mean, for Poisson classes)."""
    span = max(0.0, duration - job.start_seconds)
    if job.period_seconds:
        n = float(int(span // job.period_seconds) + 1)
        return n if job.count is None else min(n, float(job.count))
    return float(job.count) if job.count is not None else job.per_day * span / 86_400.0


def work(w: Workload, eras: int) -> Work:
    """The estimated cost of simulate(w) in `eras` eras, without running anything."""
    k = w.steps
    terms = dict.fromkeys(WORK_WEIGHTS, 0.0)
    total_n = 0.0
    for job in w.classes:
        n = expected_cgroups(job, w.duration_seconds)
        total_n += n
        groups: dict[tuple[Kind, float, tuple[float, ...]], int] = {}
        # _affected reads only these of a leftover: O(leftovers + events), not their product.
        cuts_of: dict[tuple[Kind, bool, bool], tuple[float, ...]] = {}
        for left in job.leftovers:
            how = (left.kind, left.mean_life_seconds is None,
                   left.cache is not None and left.cache.reclaimable)
            cuts = cuts_of.get(how)
            if cuts is None:
                cuts = cuts_of[how] = tuple(sorted(ev.at_seconds for ev in w.events
                                                   if _affected(ev, left, job)))
            groups[left.kind, rate_of(left, w), cuts] = len(cuts)
            kinds = 3 if left.kind is Kind.SLAB else 1  # objects, pages, non-empty caches
            parts = min(len(cuts) + 1, max(n, 1.0))  # removals split by the events
            terms["cgroups_events"] += kinds * n * (1 + parts)
            terms["steps_squared"] += kinds * parts * k * k
        draws = sum(1 + cuts for cuts in groups.values())
        terms["cgroups"] += n * (1 + draws) + eras * n * (len(groups) + 6 * math.log2(n + 2))
        terms["steps_eras"] += eras * len(job.leftovers) * k
    return Work(total_n, k, eras, sum(len(j.leftovers) for j in w.classes),
                {t: v * WORK_WEIGHTS[t] for t, v in terms.items()})
