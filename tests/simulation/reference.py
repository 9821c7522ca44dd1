"""A per-object reference of the lifecycle model: slow, explicit, event by event.

Every object, slab page, page-cache page, thread, per-memcg cache and memcg is an entity with
an explicit reference count; events (a cgroup created, an object freed, a page freed, a grace
period over, a work item run) are processed in time order. It asserts, as it goes, the
invariants the issue names: no refcount goes negative, no memcg is freed while a cache or
page references it, no cache shuts down with a non-zero count, and pages charged = pages
freed + pages live.

It also models, object by object, what the fast engine (app/simulation/engine.py) models in
aggregate: dirty pages that drop_caches cannot free until written back or synced, shared
objects charged to the first cgroup of a class (and to the next one once freed), and the
memcg-ID limit checked exactly at every mkdir. Its outputs (dying memcgs, zombie caches,
css refs on dying memcgs, the cost of what removal left) must agree with the engine's
statistically.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np

from app.domain.cost import cache_copy_bytes
from app.simulation.eras import ERAS, SlabPin
from app.simulation.workload import JobClass, Kind, Leftover, Workload

GP = 0.03  # seconds, as in the engine
PAGE = 4096
STACK_PAGES = 4  # a 16 KiB kernel stack is 4 charged pages, each a css ref (<= 5.12)
ID_MAX = 65_535  # MEM_CGROUP_ID_MAX


class InvariantViolation(AssertionError):
    """The model broke one of its own rules."""


@dataclass
class Memcg:
    offline: float
    index: int
    refs: int = 0  # css refs held by pages, caches, threads
    online: bool = True
    freed_at: float | None = None


@dataclass
class Cache:
    memcg: Memcg
    order: int
    per_slab: int
    pages_live: int = 0
    percpu_refs: int = 0  # v4/5.3: 1 << order per charged page (+ the initial ref)
    killed: bool = False
    shut_down: bool = False
    shut_down_at: float | None = None
    holds_css_on: Memcg | None = None
    reparented: bool = False
    object_ends: list[float] = field(default_factory=list)
    page_ends: list[float] = field(default_factory=list)


@dataclass
class RefResult:
    times: list[float]
    dying: list[int]
    live: list[int]
    pages_charged: int = 0
    pages_freed: int = 0
    zombie_caches: list[int] = field(default_factory=list)
    memcg_refs: list[int] = field(default_factory=list)  # css refs held on dying memcgs
    dying_cost_bytes: list[float] = field(default_factory=list)
    created: int = 0
    refused: int = 0
    enospc_seconds: float | None = None
    max_ids_held: int = 0


def simulate_reference(w: Workload, era_name: str, seed: int) -> RefResult:
    """Run one era of a workload object by object."""
    from app.simulation.engine import _affected, dying_hold_ids, era_cost_model, rate_of

    era = ERAS[era_name]
    hold = dying_hold_ids(era, w.kernel)
    memcg_bytes = era_cost_model(era, w.kernel).bytes(w.cpus, w.numa_nodes)
    copy_bytes = cache_copy_bytes(w.cpus, w.numa_nodes)
    rng = np.random.default_rng(seed)
    queue: list[tuple[float, int, str, object]] = []
    seq = itertools.count()

    def push(t: float, kind: str, what: object) -> None:
        heapq.heappush(queue, (t, next(seq), kind, what))

    memcgs: list[Memcg] = []
    created: list[float] = []
    caches: list[Cache] = []
    ref_log: list[tuple[float, int, int]] = []  # (time, memcg index, delta)
    charged = freed_pages = refused = 0
    enospc: float | None = None
    max_held = 0
    # Shared objects per (class, shared leftover): alive (charged to some memcg) or not.
    shared_alive: dict[tuple[str, int], bool] = {}
    syncs = sorted(e.at_seconds for e in w.events if e.kind == "sync")

    def arrivals(job: JobClass) -> np.ndarray:
        if job.period_seconds:
            n = int(max(0.0, w.duration_seconds - job.start_seconds) // job.period_seconds) + 1
            n = min(n, job.count) if job.count is not None else n
            return job.start_seconds + np.arange(n) * job.period_seconds
        span = w.duration_seconds - job.start_seconds
        n = int(rng.poisson(job.per_day * span / 86_400)) if job.count is None else job.count
        return np.sort(job.start_seconds + rng.uniform(0, span, n))

    def life(left: Leftover, job: JobClass, create: float, offline: float,
             dirty: bool) -> float:
        """When one object/page/thread goes: reclaim after writeback, or the first event."""
        rate = rate_of(left, w)
        t = offline + (rng.exponential(1.0 / rate) if rate > 0 else np.inf)
        clean = offline + w.writeback_seconds
        for s in syncs:
            if s >= offline:
                clean = min(clean, s)
                break
        if dirty:
            t = max(t, clean)
        for e in w.events:
            if not _affected(e, left, job):
                continue
            ready = clean if dirty and e.kind == "drop_caches" else create
            if ready <= e.at_seconds:
                t = min(t, max(e.at_seconds, offline))
        return float(t)

    def ref(t: float, mc: Memcg, delta: int) -> None:
        mc.refs += delta
        ref_log.append((t, mc.index, delta))

    def ids_held(t: float) -> int:
        return sum(1 for m in memcgs if (m.online or (hold and (m.freed_at is None
                                                                or m.freed_at > t))))

    def charge(mc: Memcg, job: JobClass, key: tuple[str, int] | None, left: Leftover,
               create: float, offline: float) -> None:
        nonlocal charged
        n_dirty = round(left.amount * min(1.0, max(0.0, left.dirty_share))) \
            if left.kind is Kind.PAGECACHE else 0
        if left.kind is Kind.SLAB and left.cache is not None:
            cache = Cache(mc, left.cache.order, left.cache.objs_per_slab)
            caches.append(cache)
            if era.per_memcg_caches:
                cache.percpu_refs = 1  # the initial ref, dropped by percpu_ref_kill
                if era.slab_pin is not SlabPin.PAGE:
                    ref(create, mc, 1)  # memcg_link_cache: css_get
                    cache.holds_css_on = mc
            per = left.cache.objs_per_slab
            lives = [life(left, job, create, offline, False) for _ in range(left.amount)]
            cache.object_ends = lives
            ends = []
            for start in range(0, left.amount, per):
                page_end = max(lives[start:start + per])
                ends.append(page_end)
                charged += 1
                cache.pages_live += 1
                weight = 1 << left.cache.order
                if era.slab_pin is SlabPin.PAGE:
                    ref(create, mc, weight)  # page->mem_cgroup: css refs per 4 KiB page
                elif era.per_memcg_caches:
                    cache.percpu_refs += weight
                push(page_end, "slab_page_free", (cache, weight, key))
            cache.page_ends = ends
            if key is not None and not ends:
                shared_alive[key] = False
            elif key is not None:
                push(max(ends), "shared_gone", key)
            return
        pins = (left.kind in (Kind.PAGECACHE, Kind.SHMEM) and era.lru_pins) or (
            left.kind is Kind.KSTACK and era.kmem_pages_pin)
        weight = STACK_PAGES if left.kind is Kind.KSTACK else 1
        last = offline
        for i in range(left.amount):
            end = life(left, job, create, offline, i < n_dirty)
            last = max(last, end)
            charged += 1
            if pins:
                ref(create, mc, weight)
            push(end, "page_free", (mc, pins, weight))
        if key is not None:
            push(last, "shared_gone", key)

    for job in w.classes:
        for create in arrivals(job):
            push(float(create), "create", job)

    def check_free(t: float, mc: Memcg) -> None:
        if mc.refs < 0:
            raise InvariantViolation(f"memcg refcount {mc.refs} < 0 at {t}")
        if not mc.online and mc.refs == 0 and mc.freed_at is None:
            mc.freed_at = t + era.release_delay_seconds
            for c in caches:
                if c.memcg is mc and era.slab_pin is SlabPin.PAGE:
                    # memcg_destroy_kmem_caches: BUG_ON if a cache is not empty
                    if c.pages_live:
                        raise InvariantViolation("cache destroyed with live pages")
                    c.shut_down = True
                    c.shut_down_at = mc.freed_at

    def cache_release(t: float, c: Cache) -> None:
        if c.percpu_refs < 0:
            raise InvariantViolation(f"cache percpu_ref {c.percpu_refs} < 0")
        if c.killed and c.percpu_refs == 0 and not c.shut_down:
            extra = GP * era.shutdown_grace_periods + 0.002
            push(t + extra, "shutdown", c)

    while queue and queue[0][0] <= w.duration_seconds:
        t, _, kind, what = heapq.heappop(queue)
        if kind == "create":
            job = what
            assert isinstance(job, JobClass)
            held = ids_held(t)
            if held >= ID_MAX:
                refused += 1  # mkdir: ENOSPC; this cgroup never exists
                continue
            if held + 1 >= ID_MAX and enospc is None:
                enospc = t
            max_held = max(max_held, held + 1)
            offline = t + job.lifetime_seconds
            mc = Memcg(offline, len(memcgs))
            memcgs.append(mc)
            created.append(t)
            push(offline, "offline", mc)
            for left in job.leftovers:
                charge(mc, job, None, left, t, offline)
            for i, left in enumerate(job.shared_leftovers):
                key = (job.name, i)
                if not shared_alive.get(key, False):
                    shared_alive[key] = True  # this cgroup looks the paths up first
                    charge(mc, job, key, left, t, offline)
        elif kind == "shared_gone":
            key = what  # type: ignore[assignment]
            assert isinstance(key, tuple)
            shared_alive[key] = False
        elif kind == "offline":
            mc = what  # type: ignore[assignment]
            assert isinstance(mc, Memcg)
            mc.online = False
            if era.per_memcg_caches and era.slab_pin is not SlabPin.PAGE:
                for c in caches:
                    if c.memcg is mc:
                        if era.caches_reparented:
                            ref(t, mc, -1)  # css_put(memcg); css_get_many(parent)
                            c.holds_css_on = None
                            c.reparented = True
                        push(t + GP * era.deactivate_grace_periods + 0.002, "kill", c)
            check_free(t, mc)
        elif kind == "kill":
            c = what  # type: ignore[assignment]
            assert isinstance(c, Cache)
            c.killed = True
            c.percpu_refs -= 1  # percpu_ref_kill drops the initial ref (atomic after a GP)
            cache_release(t + GP, c)
        elif kind == "shutdown":
            c = what  # type: ignore[assignment]
            assert isinstance(c, Cache)
            if c.percpu_refs != 0:
                raise InvariantViolation("cache shut down with a non-zero count")
            c.shut_down = True
            c.shut_down_at = t
            if c.holds_css_on is not None:
                ref(t, c.holds_css_on, -1)
                check_free(t, c.holds_css_on)
        elif kind == "slab_page_free":
            c, weight, _key = what  # type: ignore[misc]
            freed_pages += 1
            c.pages_live -= 1
            if era.slab_pin is SlabPin.PAGE:
                ref(t, c.memcg, -weight)
                check_free(t, c.memcg)
            elif era.per_memcg_caches:
                c.percpu_refs -= weight
                cache_release(t, c)
        elif kind == "page_free":
            mc, pins, weight = what  # type: ignore[misc]
            freed_pages += 1
            if pins:
                ref(t, mc, -weight)
                check_free(t, mc)
    if charged != freed_pages + sum(c.pages_live for c in caches) + _live_lru(queue):
        raise InvariantViolation("pages charged != pages freed + pages live")
    for mc in memcgs:
        if mc.freed_at is not None and mc.refs != 0:
            raise InvariantViolation("memcg freed while references remain")
    return _sample(w, era_name, memcgs, created, caches, ref_log, memcg_bytes, copy_bytes,
                   RefResult([], [], [], charged, freed_pages, created=len(memcgs),
                             refused=refused, enospc_seconds=enospc, max_ids_held=max_held))


def _sample(w: Workload, era_name: str, memcgs: list[Memcg], created: list[float],
            caches: list[Cache], ref_log: list[tuple[float, int, int]], memcg_bytes: int,
            copy_bytes: int, out: RefResult) -> RefResult:
    """The outputs on the workload's grid, from the entities' recorded lifetimes."""
    era = ERAS[era_name]
    times = [k * w.step_seconds for k in range(w.steps)]
    out.times = times
    log_t = np.array([x[0] for x in ref_log]) if ref_log else np.zeros(0)
    log_m = np.array([x[1] for x in ref_log], dtype=np.int64) if ref_log else np.zeros(0, int)
    log_d = np.array([x[2] for x in ref_log]) if ref_log else np.zeros(0)
    offline = np.array([m.offline for m in memcgs])
    freed = np.array([np.inf if m.freed_at is None else m.freed_at for m in memcgs])
    grid = np.array(times)
    cr = np.array(created)
    dying = ((offline[None, :] <= grid[:, None]) & (freed[None, :] > grid[:, None]))
    out.dying = dying.sum(axis=1).astype(int).tolist()
    out.live = ((cr[None, :] <= grid[:, None]) & (grid[:, None] < offline[None, :])).sum(
        axis=1).astype(int).tolist()
    for k, tt in enumerate(times):
        refs = log_d[(log_t <= tt) & dying[k][log_m]].sum() if len(log_d) else 0
        out.memcg_refs.append(int(refs))
    zombies = np.zeros(len(grid))
    waste = np.zeros(len(grid))
    for c in caches if era.per_memcg_caches else []:
        active = grid >= c.memcg.offline
        end = np.inf if c.shut_down_at is None else c.shut_down_at
        pe, oe = np.sort(c.page_ends), np.sort(c.object_ends)
        pages = len(pe) - np.searchsorted(pe, grid, "right")
        objects = len(oe) - np.searchsorted(oe, grid, "right")
        if era.slab_pin is SlabPin.PAGE:
            zombies += active & (end > grid)  # destroyed with its memcg
        else:
            zombies += active & (pages > 0)  # non-empty: not yet shut down
        page_bytes = PAGE << c.order
        waste += np.where(active, pages * page_bytes - objects * page_bytes / c.per_slab, 0)
    out.zombie_caches = zombies.astype(int).tolist()
    out.dying_cost_bytes = (np.array(out.dying) * memcg_bytes + zombies * copy_bytes
                            + waste).tolist()
    return out


def _live_lru(queue: list[tuple[float, int, str, object]]) -> int:
    return sum(1 for _, _, kind, _ in queue if kind == "page_free")
