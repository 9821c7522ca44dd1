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

Mechanisms beyond "what pins, until when":
  * dirty page cache (Leftover.dirty_share): drop_caches reaches a dirty page only once it is
    clean, `writeback_seconds` after removal or at the first `sync` after it (pages are
    taken as dirtied at removal: the job wrote until its end) [approximation];
  * shared objects (JobClass.shared_leftovers): charged to the first cgroup of the class, and
    after they are freed to the first cgroup that starts after that (_owners);
  * the memcg ID space (MEM_CGROUP_ID_MAX, 65535): mkdir fails with ENOSPC while every ID is
    held; refused cgroups are never created (_admit);
  * the cost of a dying memcg by kernel generation (app/domain/cost.py), and before 5.9 its
    per-memcg kmem_cache copies and the empty slots of their slab pages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.domain.cost import CostModel, cache_copy_bytes, model_for_version
from app.simulation.eras import ERAS, EraModel, SlabPin
from app.simulation.workload import Event, JobClass, Kind, Leftover, Workload

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
PAGE = 4096
KSTACK_PAGES = 4  # 16 KiB kernel stacks on x86_64
PINS = ("slab", "pagecache", "shmem", "kstack")
# MEM_CGROUP_ID_MAX: memcg IDs are 16 bits (include/linux/memcontrol.h, ((1 << 16) - 1));
# mem_cgroup_alloc() fails with -ENOSPC when none is free, and mkdir with it
# (kernel-notes.md 5.2, 6: moby#29638, kubernetes#61937).
MEMCG_ID_MAX = 65_535
# Since 73f576c04b94 ("mm: memcontrol: fix cgroup creation failure after many small jobs",
# 4.8, backported to stable) a memcg's private ID is put at offline (mem_cgroup_css_offline
# -> mem_cgroup_id_put) and recycled unless swap-out records hold it; before it, the ID was
# the css ID, held until the css was freed: every dying memcg kept one.
ID_RECYCLED_SINCE = (4, 8)


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
    # Dying memcgs count only where they hold IDs (dying_hold_ids).
    enospc_seconds: float | None = None
    refused_total: int = 0  # mkdirs that failed with ENOSPC: those cgroups never existed
    memcg_cost_bytes: int = 0  # one dying memcg, without cache copies (era_cost_model)
    cost_model: str = ""


@dataclass(slots=True)
class SimulationResult:
    """Every requested era of one workload, same seed."""

    workload: str
    seed: int
    step_seconds: float
    eras: dict[str, EraResult] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Part:
    """One leftover as the engine draws it: its clean or its dirty share, own or shared."""

    left: Leftover
    amount: int
    dirty: bool
    shared: bool


def _parts(job: JobClass) -> list[_Part]:
    """A class's leftovers, dirty page cache split from clean, then its shared leftovers."""
    out: list[_Part] = []
    for shared, lefts in ((False, job.leftovers), (True, job.shared_leftovers)):
        for left in lefts:
            dirty = round(left.amount * min(1.0, max(0.0, left.dirty_share))) \
                if left.kind is Kind.PAGECACHE else 0
            if left.amount - dirty > 0 or dirty == 0:
                out.append(_Part(left, left.amount - dirty, False, shared))
            if dirty:
                out.append(_Part(left, dirty, True, shared))
    return out


@dataclass(slots=True)
class _Cohort:
    """The cgroups of one class: when they came and went, and what pins each, until when.

    `release` is per pin group: leftovers of one kind that go away the same way (same rate,
    same events, both dirty or both clean, both own or both shared) share one draw, because
    the last of their objects is the last of all of them: T = max over groups of the
    last-of-sum(n) lifetime. `group_of` maps a part to its group. `first` is, per part,
    when an operator event first frees it in each cgroup (inf: never); `owner`, per shared
    group, which cgroups charged the shared objects.
    """

    job: JobClass
    create: Array
    offline: Array
    parts: list[_Part]
    release: dict[int, Array]  # pin group -> absolute time it is all gone (inf: never)
    group_of: dict[int, int]  # part index -> pin group
    group_kind: dict[int, Kind]
    first: dict[int, Array]  # part index -> first event that frees it, per cgroup
    owner: dict[int, Mask]  # shared pin group -> the cgroups that charged it

    def mask_of(self, part: int) -> Mask | None:
        """The cgroups a part is charged to (None: all of them)."""
        return self.owner.get(self.group_of[part])


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
    """Whether an event frees (clean) objects of this leftover; `sync` frees nothing."""
    if ev.kind == "drop_caches":
        if left.mean_life_seconds is not None:
            return False  # held by a live user: reclaim cannot free it
        if left.kind is Kind.PAGECACHE:
            return ev.mode in (1, 3)
        if left.kind is Kind.SLAB:
            return ev.mode in (2, 3) and left.cache is not None and left.cache.reclaimable
        return False
    if ev.kind == "delete_files":
        # Deleting a file truncates its pages, dirty or clean.
        return left.kind in (Kind.PAGECACHE, Kind.SHMEM) and ev.job in (None, job.name)
    return False


def _cuts(part: _Part, job: JobClass, w: Workload) -> tuple[tuple[float, bool], ...]:
    """The events that free a part: (time, needs the pages clean), in time order."""
    return tuple(sorted((ev.at_seconds, part.dirty and ev.kind == "drop_caches")
                        for ev in w.events if _affected(ev, part.left, job)))


def _clean_at(offline: Array, w: Workload) -> Array:
    """When dirty pages left at removal are clean: writeback, or the first sync after."""
    clean = offline + w.writeback_seconds
    syncs = np.sort(np.asarray([ev.at_seconds for ev in w.events if ev.kind == "sync"],
                               dtype=np.float64))
    if len(syncs):
        i = np.searchsorted(syncs, offline, "left")
        at = syncs[np.minimum(i, len(syncs) - 1)]
        clean = np.where(i < len(syncs), np.minimum(clean, at), clean)
    return clean


def _first_cut(cuts: tuple[tuple[float, bool], ...], create: Array,
               clean: Array | None) -> Array:
    """Per cgroup, the first event that frees the part (inf: none).

    An event reaches what a cgroup created before it (the existing rule); a drop_caches
    reaches dirty pages only once they are clean.
    """
    first = np.full(len(create), np.inf)
    for at, gated in reversed(cuts):
        ready = clean if gated and clean is not None else create
        first = np.where(ready <= at, at, first)
    return first


def _cut(t: Array, offline: Array, first: Array, clean: Array | None) -> Array:
    """Release times after writeback (reclaim waits for it) and operator events."""
    if clean is not None:
        t = np.maximum(t, clean)
    return np.where(np.isfinite(first), np.minimum(t, np.maximum(first, offline)), t)


def _owners(create: Array, offline: Array, first: Array, clean: Array | None, amount: int,
            rate: float, rng: np.random.Generator) -> tuple[Mask, Array]:
    """Which cgroups charge a class's shared objects, and when each one's charge goes.

    The first cgroup charges them; they stay charged to it while later cgroups use them,
    until reclaim or an event frees them; the first cgroup created after that charges them
    anew (it looks the paths up when it starts) [approximation].
    """
    n = len(create)
    mask = np.zeros(n, dtype=np.bool_)
    # Each cgroup's charge if it were an owner (one vectorised draw each), and the cgroup
    # that would charge the objects after it; then follow the chain from the first.
    gone = _cut(offline + _last_of(amount, rate, n, rng), offline, first, clean)
    after = np.where(np.isfinite(gone), np.searchsorted(create, gone, "right"), n).tolist()
    i = 0
    while i < n:
        mask[i] = True
        i = after[i]
    return mask, np.where(mask, gone, offline)


def _cohort(job: JobClass, w: Workload, rng: np.random.Generator) -> _Cohort:
    create = _arrivals(job, w.duration_seconds, rng)
    offline = create + job.lifetime_seconds
    parts = _parts(job)
    keys: dict[tuple[Kind, float, tuple[tuple[float, bool], ...], bool, bool], int] = {}
    amounts: dict[int, int] = {}
    group_of: dict[int, int] = {}
    group_kind: dict[int, Kind] = {}
    first: dict[int, Array] = {}
    clean = _clean_at(offline, w) if any(p.dirty for p in parts) else None
    by_cuts: dict[tuple[tuple[float, bool], ...], Array] = {}
    for i, part in enumerate(parts):
        cuts = _cuts(part, job, w)
        key = (part.left.kind, rate_of(part.left, w), cuts, part.dirty, part.shared)
        g = keys.setdefault(key, len(keys))
        group_of[i] = g
        group_kind[g] = part.left.kind
        amounts[g] = amounts.get(g, 0) + part.amount
        if cuts not in by_cuts:
            by_cuts[cuts] = _first_cut(cuts, create, clean)
        first[i] = by_cuts[cuts]
    release: dict[int, Array] = {}
    owner: dict[int, Mask] = {}
    for (_kind, rate, cuts, dirty, shared), g in keys.items():
        wb = clean if dirty else None
        if shared:
            owner[g], release[g] = _owners(create, offline, by_cuts[cuts], wb, amounts[g],
                                           rate, rng)
            continue
        t = offline + _last_of(amounts[g], rate, len(create), rng,
                               g if job.weight != 1.0 else None)
        release[g] = _cut(t, offline, by_cuts[cuts], wb)
    return _Cohort(job, create, offline, parts, release, group_of, group_kind, first, owner)


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


def _expected(times: Array, step: float, offline: Array, first: Array, cuts: Array,
              survival: Callable[[Array], Array]) -> Array:
    """Expected sum over cgroups of survival(time since removal), cut by their events.

    Removals are binned on the grid (bucket k holds those in (t[k-1], t[k]]) and the
    histogram is convolved with the survival function sampled at the grid's lags, each lag
    plus the removals' mean age at their bucket's time (a removal just before t[k] has
    lived less than one a step earlier: without it the sums run up to a step of decay
    high); the cgroups first reached by one event (`first`) are a separate group whose sum
    drops to zero at the event.
    """
    out = np.zeros_like(times)
    if len(offline) == 0:
        return out
    k_len = len(times)
    bucket = np.clip(np.ceil(offline / step).astype(np.int64), 0, k_len - 1)
    age = np.maximum(times[bucket] - offline, 0.0)
    group = np.searchsorted(cuts, first, "left")  # cuts: the event times; len: never
    for g in np.unique(group):
        sel = group == g
        kernel = survival(times - times[0] + float(age[sel].mean()))
        hist = np.bincount(bucket[sel], minlength=k_len).astype(np.float64)
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

def era_span(era: EraModel) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """The kernels an era stands for: [first, next era's first), from the eras' facts.

    An era with no release of its own is either the oldest mainline rule (slab pages pin:
    every kernel before 5.3) or a patch posted against the kernel before the next release.
    """
    later = sorted(e.since for e in ERAS.values()
                   if e.since is not None and (era.since is None or e.since > era.since))
    hi = later[0] if later else None
    if era.since is not None:
        return era.since, hi
    if era.slab_pin is SlabPin.PAGE or hi is None:
        return (0, 0), hi
    return (hi[0], hi[1] - 1), hi


def _in_span(era: EraModel, kernel: tuple[int, int] | None) -> bool:
    lo, hi = era_span(era)
    return kernel is not None and lo <= kernel and (hi is None or kernel < hi)


def era_cost_model(era: EraModel, kernel: tuple[int, int] | None = None) -> CostModel:
    """The cost generation of one dying memcg in an era (app/domain/cost.py).

    The host's kernel picks it when the era covers that kernel (objcg-kmem spans 5.13 to
    7.0: before 6.10 the memcg stats were larger); otherwise the era's newest kernels do
    (pre-5.3, v4, 5.3: up to 5.8; objcg: 5.9-6.9; objcg-kmem and later: 6.10+).
    """
    lo, hi = era_span(era)
    if _in_span(era, kernel):
        assert kernel is not None
        return model_for_version(kernel)
    newest = (99, 0) if hi is None else (hi[0], hi[1] - 1) if hi[1] else (hi[0] - 1, 99)
    return model_for_version(max(lo, newest))


def dying_hold_ids(era: EraModel, kernel: tuple[int, int] | None = None) -> bool:
    """Whether dying memcgs keep their memcg ID (and so count against MEMCG_ID_MAX).

    Only before 4.8 (ID_RECYCLED_SINCE): the host's kernel says so when the era covers it;
    otherwise an era that spans kernels before 4.8 (pre-5.3: 3.x and 4.x, where the 65535
    limit was hit, kernel-notes.md 5.2) takes the worst case. Swap-out records also hold
    IDs; swap is not modelled.
    """
    if _in_span(era, kernel):
        assert kernel is not None
        return kernel < ID_RECYCLED_SINCE
    return era_span(era)[0] < ID_RECYCLED_SINCE


ADMIT_BINS = 2048  # at least this many admission steps once the ID space is full


def _admit(spans: list[tuple[Array, Array, float]], times: Array,
           ) -> tuple[list[Mask | None], float | None, float]:
    """Which cgroups mkdir could create under the memcg-ID limit, when it was first reached,
    and the weight of those refused.

    `spans` is, per class, each cgroup's creation, the time its ID is free again, and the
    class weight. Until the limit is first exceeded every cgroup is created (checked exactly
    at each creation). From then on, time is cut into steps (the output grid, at least
    ADMIT_BINS of them) and a step's creations are admitted in order while the IDs held at
    its start plus those admitted in it stay within MEMCG_ID_MAX; IDs freed during a step
    make room from the next one [approximation: conservative, so the count never exceeds
    the limit]. Refused cgroups do not exist: they never become dying.
    """
    sizes = [len(c) for c, _, _ in spans]
    every: list[Mask | None] = [None] * len(spans)
    total = sum(len(c) * wt for c, _, wt in spans)
    if total < MEMCG_ID_MAX - 1e-9 or not sizes or sum(sizes) == 0:
        return every, None, 0.0
    create = np.concatenate([c for c, _, _ in spans])
    end = np.concatenate([e for _, e, _ in spans])
    weight = np.concatenate([np.full(len(c), wt) for c, _, wt in spans])
    order = np.argsort(create, kind="stable")
    cs, ws, es = create[order], weight[order], end[order]
    by_end = np.argsort(end, kind="stable")
    ended = np.concatenate([[0.0], np.cumsum(weight[by_end])])
    held = np.cumsum(ws) - ended[np.searchsorted(end[by_end], cs, "right")]
    reached = held >= MEMCG_ID_MAX - 1e-9
    if not reached.any():
        return every, None, 0.0
    enospc = float(cs[int(np.argmax(reached))])
    over = held > MEMCG_ID_MAX + 1e-9
    if not over.any():
        return every, enospc, 0.0
    i0 = int(np.argmax(over))
    k = max(len(times), ADMIT_BINS)
    width = float(times[-1]) / (k - 1) if times[-1] > 0 else 1.0
    cbin = np.clip(np.ceil(cs / width), 0, k - 1).astype(np.int64)
    ebin = np.where(np.isfinite(es), np.ceil(np.minimum(es, k * width) / width), k)
    ebin = np.clip(ebin, 0, k).astype(np.int64)
    bounds = np.searchsorted(cbin, np.arange(k + 1), "left")
    admitted = np.zeros(len(cs), dtype=np.bool_)
    admitted[:i0] = True
    ends = np.bincount(ebin[:i0], weights=ws[:i0], minlength=k + 1)
    b0 = int(cbin[i0])
    present = float(ws[:bounds[b0]].sum() - ends[:b0].sum())
    in_step = float(ws[bounds[b0]:i0].sum())
    for b in range(b0, k):
        lo, hi = (i0 if b == b0 else int(bounds[b])), int(bounds[b + 1])
        room = MEMCG_ID_MAX - present - in_step
        if hi > lo and room > 0:
            take = lo + int(np.searchsorted(np.cumsum(ws[lo:hi]), room + 1e-9, "right"))
            admitted[lo:take] = True
            in_step += float(ws[lo:take].sum())
            np.add.at(ends, ebin[lo:take], ws[lo:take])
        present += in_step - float(ends[b])
        in_step = 0.0
    refused = float(ws[~admitted].sum())
    back = np.empty_like(admitted)
    back[order] = admitted
    out: list[Mask | None] = []
    start = 0
    for size in sizes:
        m = back[start:start + size]
        out.append(None if m.all() else m)
        start += size
    return out, enospc, refused


def _expect_cohort(c: _Cohort, w: Workload, times: Array,
                   admitted: Mask | None) -> dict[tuple[int, str], Array]:
    """Expected aggregates of one cohort's parts over the cgroups that exist and charge them."""
    out: dict[tuple[int, str], Array] = {}
    for pi, part in enumerate(c.parts):
        mask = c.mask_of(pi)
        if admitted is not None:
            mask = admitted if mask is None else (mask & admitted)
        offline = c.offline if mask is None else c.offline[mask]
        first = c.first[pi] if mask is None else c.first[pi][mask]
        r = rate_of(part.left, w)
        n = part.amount
        step = w.step_seconds
        cuts = np.asarray(sorted({at for at, _ in _cuts(part, c.job, w)}), dtype=np.float64)
        if part.left.kind is Kind.SLAB and part.left.cache is not None:
            out[pi, "objects"] = _expected(times, step, offline, first, cuts, _objects(n, r))
            out[pi, "pages"] = _expected(times, step, offline, first, cuts,
                                         _pages(n, part.left.cache.objs_per_slab, r))
            out[pi, "nonempty"] = _expected(times, step, offline, first, cuts,
                                            _nonempty(n, r))
        else:
            out[pi, "units"] = _expected(times, step, offline, first, cuts, _objects(n, r))
    return out


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
    copy = cache_copy_bytes(w.cpus, w.numa_nodes)
    # Era-independent expectations, computed once per part (again in an era whose ID limit
    # refused cgroups).
    expect = [_expect_cohort(c, w, times, None) for c in cohorts] if aggregates else None
    out = SimulationResult(w.name, seed, w.step_seconds)
    for name, model in models.items():
        if progress is not None:
            progress(name)
        out.eras[name] = _era(model, w, cohorts, times, expect, copy)
    return out


def _ints(a: Array) -> list[int]:
    # Counts are whole numbers unless a class is thinned (weight != 1): round, not truncate.
    out: list[int] = np.rint(a).astype(np.int64).tolist()
    return out


def _era(era: EraModel, w: Workload, cohorts: list[_Cohort], times: Array,
         expect: list[dict[tuple[int, str], Array]] | None, copy: int) -> EraResult:
    model = era_cost_model(era, w.kernel)
    cost = model.bytes(w.cpus, w.numa_nodes)
    gp = 0.03  # one RCU grace period, seconds (a few jiffies at HZ=250)
    # 1. When each cgroup's memcg would be freed, and until when each kind pins it.
    frees: list[tuple[Array, Array, dict[Kind, Array]]] = []
    for c in cohorts:
        pinned_until = c.offline.copy()
        per_kind: dict[Kind, Array] = {}
        for g, kind in c.group_kind.items():
            if _pins_in(era, kind):
                pinned_until = np.maximum(pinned_until, c.release[g])
                per_kind[kind] = np.maximum(per_kind.get(kind, c.offline), c.release[g])
        delay = era.release_delay_seconds
        if era.slab_pin is SlabPin.CACHE and any(p.left.kind is Kind.SLAB for p in c.parts):
            # drained -> percpu_ref_kill (atomic after a grace period) -> zero -> RCU -> work
            delay += gp * (era.deactivate_grace_periods + era.shutdown_grace_periods + 1)
        free = np.where(np.isinf(pinned_until), np.inf,
                        np.maximum(pinned_until + delay, c.offline + era.release_delay_seconds))
        frees.append((pinned_until, free, per_kind))
    # 2. The memcg-ID space: which cgroups mkdir could create at all.
    hold = dying_hold_ids(era, w.kernel)
    admitted, enospc, refused = _admit(
        [(c.create, f if hold else c.offline, c.job.weight)
         for c, (_, f, _) in zip(cohorts, frees, strict=True)], times)
    # 3. Counts and aggregates over the cgroups that exist.
    zeros = np.zeros_like(times)
    live, dying, in_release = zeros.copy(), zeros.copy(), zeros.copy()
    by_pin = {p: zeros.copy() for p in PINS}
    zombies, sysfs, slab_bytes, waste = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    cache_refs, memcg_refs, parent_refs = zeros.copy(), zeros.copy(), zeros.copy()
    created = freed = never = 0
    for ci, (c, (pinned_all, free_all, per_kind_all)) in enumerate(
            zip(cohorts, frees, strict=True)):
        m = admitted[ci]

        def sub(a: Array, m: Mask | None = m) -> Array:
            return a if m is None else a[m]

        create, offline, free, pinned_until = (sub(c.create), sub(c.offline), sub(free_all),
                                               sub(pinned_all))
        n = len(create)
        if n == 0:
            continue
        wt = c.job.weight
        created += round(n * wt)
        if expect is not None:
            for kind, until in per_kind_all.items():
                by_pin[kind.value] += wt * _counts(times, offline, sub(until))
        live += wt * _counts(times, create, offline)
        dying_c = wt * _counts(times, offline, free)
        dying += dying_c
        freed += round(int((free <= times[-1]).sum()) * wt)
        never += round(int(np.isinf(free).sum()) * wt)
        if expect is None:
            continue  # live and dying only (simulate(aggregates=False))
        ex = expect[ci] if m is None else _expect_cohort(c, w, times, m)
        in_release += wt * _counts(times, np.where(np.isinf(pinned_until), np.inf,
                                                   pinned_until), free)
        slab_parts = [pi for pi, p in enumerate(c.parts) if p.left.kind is Kind.SLAB
                      and p.left.cache is not None]
        own = {c.parts[pi].left.cache.name for pi in slab_parts  # type: ignore[union-attr]
               if not c.parts[pi].shared}
        # Each memcg has one copy of each cache it allocated from; a shared part's cache
        # adds a copy only to its owners, and only if they had no copy of their own.
        extra: dict[str, Mask] = {}
        for pi in slab_parts:
            name = c.parts[pi].left.cache.name  # type: ignore[union-attr]
            owners = c.mask_of(pi)
            if c.parts[pi].shared and name not in own and name not in extra \
                    and owners is not None:
                extra[name] = owners
        for pi in slab_parts:
            geo = c.parts[pi].left.cache
            assert geo is not None
            per_page = (1 << geo.order)
            pages = wt * ex[pi, "pages"]
            nonempty = wt * ex[pi, "nonempty"]
            objects = wt * ex[pi, "objects"]
            if era.per_memcg_caches:
                slab_bytes += pages * per_page * PAGE
                # A per-memcg cache's slab pages hold only its memcg's objects: their
                # empty slots are lost (a shared cache would fill them).
                waste += pages * per_page * PAGE - objects * (per_page * PAGE /
                                                              geo.objs_per_slab)
                if era.slab_pin is SlabPin.PAGE:
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
                slab_bytes += objects * geo.object_size_bytes
        if era.per_memcg_caches and era.slab_pin is SlabPin.PAGE:
            # Caches are destroyed only with their memcg: zombies while it is dying.
            for owners in [None] * len(own) + list(extra.values()):
                mk = owners if owners is None or m is None else owners[m]
                zc = dying_c if mk is None else wt * _counts(times, offline[mk], free[mk])
                zombies += zc
                sysfs += zc if era.sysfs_child_dirs else 0.0
        if era.per_memcg_caches and era.sysfs_child_dirs:
            sysfs += wt * _counts(times, create, offline) * len(own)
        for pi, part in enumerate(c.parts):
            if part.left.kind is Kind.SLAB or not _pins_in(era, part.left.kind):
                continue
            units = wt * ex[pi, "units"]
            memcg_refs += units * (KSTACK_PAGES if part.left.kind is Kind.KSTACK else 1)
    return EraResult(
        era=era.name, times_seconds=times.tolist(), live=_ints(live), dying=_ints(dying),
        dying_by_pin={p: _ints(v) for p, v in by_pin.items()},
        dying_in_release=_ints(in_release),
        dying_cost_bytes=(dying * cost + zombies * copy + np.maximum(waste, 0.0)).tolist(),
        zombie_caches=zombies.tolist(), sysfs_dirs=sysfs.tolist(),
        leftover_slab_bytes=slab_bytes.tolist(), cache_refs=cache_refs.tolist(),
        memcg_refs=memcg_refs.tolist(), parent_refs=parent_refs.tolist(),
        created_total=created, freed_total=freed, never_freed=never,
        enospc_seconds=enospc, refused_total=round(refused), memcg_cost_bytes=cost,
        cost_model=model.name)


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
    ids = 0.0
    for job in w.classes:
        n = expected_cgroups(job, w.duration_seconds)
        total_n += n
        ids += n * job.weight
        groups: dict[tuple[Kind, float, tuple[tuple[float, bool], ...], bool, bool], int] = {}
        # _affected reads only these of a leftover: O(leftovers + events), not their product.
        cuts_of: dict[tuple[Kind, bool, bool, bool], tuple[tuple[float, bool], ...]] = {}
        parts = _parts(job)
        for part in parts:
            left = part.left
            how = (left.kind, left.mean_life_seconds is None,
                   left.cache is not None and left.cache.reclaimable, part.dirty)
            cuts = cuts_of.get(how)
            if cuts is None:
                cuts = cuts_of[how] = _cuts(part, job, w)
            groups[left.kind, rate_of(left, w), cuts, part.dirty, part.shared] = len(cuts)
            kinds = 3 if left.kind is Kind.SLAB else 1  # objects, pages, non-empty caches
            split = min(len(cuts) + 1, max(n, 1.0))  # removals split by the events
            terms["cgroups_events"] += kinds * n * (1 + split)
            terms["steps_squared"] += kinds * split * k * k
        draws = sum(1 + cuts for cuts in groups.values())
        # _owners: a chain walked in Python, at most one step per cgroup, per shared group.
        draws += 5 * sum(1 for key in groups if key[4])
        terms["cgroups"] += n * (1 + draws) + eras * n * (len(groups) + 6 * math.log2(n + 2))
        terms["steps_eras"] += eras * len(parts) * k
    if ids >= MEMCG_ID_MAX:
        # _admit: every era sorts all cgroups by creation and by the end of their ID.
        terms["cgroups"] += eras * total_n * math.log2(total_n + 2)
    return Work(total_n, k, eras, sum(len(_parts(j)) for j in w.classes),
                {t: v * WORK_WEIGHTS[t] for t, v in terms.items()})
