"""A per-object reference of the lifecycle model: slow, explicit, event by event.

Every object, slab page, page-cache page, thread, per-memcg cache and memcg is an entity with
an explicit reference count; events (an object freed, a page freed, a grace period over, a
work item run) are processed in time order. It asserts, as it goes, the invariants the issue
names: no refcount goes negative, no memcg is freed while a cache or page references it, no
cache shuts down with a non-zero count, and pages charged = pages freed + pages live.
The fast engine (app/simulation/engine.py) must agree with it statistically.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np

from app.simulation.eras import ERAS, SlabPin
from app.simulation.workload import Kind, Workload

GP = 0.03  # seconds, as in the engine


class InvariantViolation(AssertionError):
    """The model broke one of its own rules."""


@dataclass
class Memcg:
    offline: float
    refs: int = 0  # css refs held by pages, caches, threads
    online: bool = True
    freed_at: float | None = None


@dataclass
class Cache:
    memcg: Memcg
    order: int
    pages_live: int = 0
    percpu_refs: int = 0  # v4/5.3: 1 << order per charged page (+ the initial ref)
    killed: bool = False
    shut_down: bool = False
    holds_css_on: Memcg | None = None
    reparented: bool = False


@dataclass
class RefResult:
    times: list[float]
    dying: list[int]
    live: list[int]
    pages_charged: int = 0
    pages_freed: int = 0
    zombie_caches: list[int] = field(default_factory=list)


def simulate_reference(w: Workload, era_name: str, seed: int) -> RefResult:
    """Run one era of a workload object by object."""
    era = ERAS[era_name]
    rng = np.random.default_rng(seed)
    queue: list[tuple[float, int, str, object]] = []
    seq = itertools.count()

    def push(t: float, kind: str, what: object) -> None:
        heapq.heappush(queue, (t, next(seq), kind, what))

    memcgs: list[Memcg] = []
    created: list[float] = []
    caches: list[Cache] = []
    charged = freed_pages = 0

    def arrivals(job) -> np.ndarray:  # type: ignore[no-untyped-def]
        if job.period_seconds:
            n = int(max(0.0, w.duration_seconds - job.start_seconds) // job.period_seconds) + 1
            n = min(n, job.count) if job.count is not None else n
            return job.start_seconds + np.arange(n) * job.period_seconds
        span = w.duration_seconds - job.start_seconds
        n = int(rng.poisson(job.per_day * span / 86_400)) if job.count is None else job.count
        return np.sort(job.start_seconds + rng.uniform(0, span, n))

    def life(rate: float, create: float, offline: float, cuts: list[float]) -> float:
        t = offline + (rng.exponential(1.0 / rate) if rate > 0 else np.inf)
        for cut in cuts:
            if create <= cut:
                t = min(t, max(cut, offline))
        return float(t)

    from app.simulation.engine import _affected, rate_of

    for job in w.classes:
        for create in arrivals(job):
            offline = float(create + job.lifetime_seconds)
            mc = Memcg(offline)
            memcgs.append(mc)
            created.append(float(create))
            push(offline, "offline", mc)
            for left in job.leftovers:
                rate = rate_of(left, w)
                cuts = [e.at_seconds for e in w.events if _affected(e, left, job)]
                if left.kind is Kind.SLAB and left.cache is not None:
                    cache = Cache(mc, left.cache.order)
                    caches.append(cache)
                    if era.per_memcg_caches:
                        cache.percpu_refs = 1  # the initial ref, dropped by percpu_ref_kill
                        if era.slab_pin is not SlabPin.PAGE:
                            mc.refs += 1  # memcg_link_cache: css_get
                            cache.holds_css_on = mc
                    per = left.cache.objs_per_slab
                    lives = [life(rate, create, offline, cuts) for _ in range(left.amount)]
                    for start in range(0, left.amount, per):
                        page_end = max(lives[start:start + per])
                        charged += 1
                        cache.pages_live += 1
                        weight = 1 << left.cache.order
                        if era.slab_pin is SlabPin.PAGE:
                            mc.refs += weight  # page->mem_cgroup: css refs per 4 KiB page
                        elif era.per_memcg_caches:
                            cache.percpu_refs += weight
                        push(page_end, "slab_page_free", (cache, weight))
                else:
                    pins = (left.kind in (Kind.PAGECACHE, Kind.SHMEM) and era.lru_pins) or (
                        left.kind is Kind.KSTACK and era.kmem_pages_pin)
                    for _ in range(left.amount):
                        end = life(rate, create, offline, cuts)
                        charged += 1
                        if pins:
                            mc.refs += 1
                        push(end, "page_free", (mc, pins))

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

    def cache_release(t: float, c: Cache) -> None:
        if c.percpu_refs < 0:
            raise InvariantViolation(f"cache percpu_ref {c.percpu_refs} < 0")
        if c.killed and c.percpu_refs == 0 and not c.shut_down:
            extra = GP * era.shutdown_grace_periods + 0.002
            push(t + extra, "shutdown", c)

    while queue and queue[0][0] <= w.duration_seconds:
        t, _, kind, what = heapq.heappop(queue)
        if kind == "offline":
            mc = what  # type: ignore[assignment]
            assert isinstance(mc, Memcg)
            mc.online = False
            if era.per_memcg_caches and era.slab_pin is not SlabPin.PAGE:
                for c in caches:
                    if c.memcg is mc:
                        if era.caches_reparented:
                            mc.refs -= 1  # css_put(memcg); css_get_many(parent)
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
            if c.holds_css_on is not None:
                c.holds_css_on.refs -= 1
                check_free(t, c.holds_css_on)
        elif kind == "slab_page_free":
            c, weight = what  # type: ignore[misc]
            freed_pages += 1
            c.pages_live -= 1
            if era.slab_pin is SlabPin.PAGE:
                c.memcg.refs -= weight
                check_free(t, c.memcg)
            elif era.per_memcg_caches:
                c.percpu_refs -= weight
                cache_release(t, c)
        elif kind == "page_free":
            mc, pins = what  # type: ignore[misc]
            freed_pages += 1
            if pins:
                mc.refs -= 1
                check_free(t, mc)
    if charged != freed_pages + sum(c.pages_live for c in caches) + _live_lru(queue):
        raise InvariantViolation("pages charged != pages freed + pages live")
    for mc in memcgs:
        if mc.freed_at is not None and mc.refs != 0:
            raise InvariantViolation("memcg freed while references remain")
    times = [k * w.step_seconds for k in range(w.steps)]
    dying, live, zombies = [], [], []
    for tt in times:
        dying.append(sum(1 for m in memcgs if m.offline <= tt and (m.freed_at is None
                                                                    or m.freed_at > tt)))
        live.append(sum(1 for cr, m in zip(created, memcgs, strict=True)
                        if cr <= tt < m.offline))
        zombies.append(0)
    return RefResult(times, dying, live, charged, freed_pages, zombies)


def _live_lru(queue: list[tuple[float, int, str, object]]) -> int:
    return sum(1 for _, _, kind, _ in queue if kind == "page_free")
