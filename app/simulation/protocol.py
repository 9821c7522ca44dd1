"""The protocol of one per-memcg kmem_cache under the 2019 series, event by event.

States: active -> deactivating (call_rcu) -> killed (percpu_ref_kill, atomic mode after a
grace period) -> draining (pages still charged) -> zero -> shutdown queued -> shut down ->
css put. RCU is modelled per CPU: a grace period ends once every CPU has been outside a
read-side section (nesting 0) after it started. Allocations run memcg_kmem_get_cache():

    rcu_read_lock(); cachep = lookup(); percpu_ref_tryget(&cachep->refcnt);
    out_unlock: rcu_read_unlock();        <- v4 as posted has rcu_read_lock() here

then allocate (GFP_KERNEL may sleep) and memcg_kmem_put_cache(). With the v4 bug the
nesting only grows: read-side sections never end, grace periods stall, the deferred
deactivation and shutdown never run, and the next sleeping allocation is "sleeping function
called from invalid context" (Waiman Long 2019-05-21; 0-day: 560 boots). v5 and 5.3 are clean.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Literal

Variant = Literal["v4", "v5", "5.3"]
VARIANTS: tuple[Variant, ...] = ("v4", "v5", "5.3")


@dataclass(frozen=True, slots=True)
class Step:
    """One event of the protocol, and the state right after it."""

    t_ms: float
    actor: str  # "cpu0", "rcu", "workqueue", "memcg", "reclaim"
    event: str
    state: str
    refcount: int
    percpu_mode: bool
    rcu_nesting: tuple[int, ...]
    grace_periods_done: int
    violation: str | None = None


@dataclass(slots=True)
class ProtocolRun:
    """The whole run: steps, invariant violations, and where the cache ended."""

    variant: Variant
    steps: list[Step] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    final_state: str = "active"
    css_put: bool = False


@dataclass(order=True, slots=True)
class _Ev:
    t: float
    seq: int
    kind: str = field(compare=False)
    arg: int = field(compare=False, default=0)


def run(variant: Variant, *, cpus: int = 2, pages: int = 3, order: int = 0,
        offline_ms: float = 10.0, allocs: tuple[tuple[int, float], ...] | None = None,
        page_free_ms: tuple[float, ...] = (40.0, 60.0, 90.0), gp_ms: float = 8.0,
        work_ms: float = 2.0, horizon_ms: float = 400.0) -> ProtocolRun:
    """Run one cache through offline and draining; `allocs` are (cpu, time) allocations."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}")
    allocs = allocs if allocs is not None else ((0, 2.0), (1, 5.0), (0, 12.0), (1, 30.0))
    out = ProtocolRun(variant)
    nesting = [0] * cpus
    refcount = 1 + pages * (1 << order)  # the initial ref, and 1 << order per charged page
    percpu = True
    state = "active"
    gp_done = 0
    pending_gp: list[tuple[str, set[int]]] = []  # callbacks waiting for CPUs to quiesce
    queue: list[_Ev] = []
    seq = 0

    def push(t: float, kind: str, arg: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, _Ev(t, seq, kind, arg))

    def log(t: float, actor: str, event: str, violation: str | None = None) -> None:
        if violation:
            out.violations.append(f"{t:.1f} ms {actor}: {violation}")
        out.steps.append(Step(t, actor, event, state, refcount, percpu, tuple(nesting),
                              gp_done, violation))

    def quiesce(t: float, cpu: int) -> None:
        nonlocal gp_done
        for cb, waiting in list(pending_gp):
            waiting.discard(cpu)
            if not waiting:
                pending_gp.remove((cb, waiting))
                gp_done += 1
                push(t, cb)

    def call_rcu(t: float, cb: str) -> None:
        waiting = {c for c in range(cpus) if nesting[c] > 0}
        pending_gp.append((cb, waiting))
        log(t, "rcu", f"call_rcu({cb}): grace period starts, waiting for "
            f"{', '.join(f'cpu{c}' for c in sorted(waiting)) or 'no CPU'}")
        if not waiting:
            push(t + gp_ms, "gp_end:" + cb)

    for cpu, at in allocs:
        push(at, "alloc", cpu)
    push(offline_ms, "offline")
    for at in page_free_ms[:pages]:
        push(at, "page_free")
    for c in range(cpus):  # each CPU schedules regularly: a chance to report a quiescent state
        t = gp_ms / 2
        while t < horizon_ms:
            push(t, "tick", c)
            t += gp_ms

    def put(t: float, n: int, actor: str, what: str) -> None:
        nonlocal refcount, state
        refcount -= n
        violation = "refcount went negative" if refcount < 0 else None
        log(t, actor, what, violation)
        if refcount == 0 and not percpu:
            state = "zero"
            log(t, actor, "refcount reached zero: release callback")
            if variant == "v4" or variant == "v5":
                state = "shutdown queued"
                call_rcu(t, "shutdown")
            else:
                state = "shutdown queued"
                push(t + work_ms, "shutdown_work")

    while queue:
        ev = heapq.heappop(queue)
        t = ev.t
        if t > horizon_ms:
            break
        if ev.kind == "tick":
            if nesting[ev.arg] == 0:
                quiesce(t, ev.arg)
        elif ev.kind.startswith("gp_end:"):
            gp_done += 1
            push(t, ev.kind.split(":", 1)[1])
        elif ev.kind == "alloc":
            c = ev.arg
            nesting[c] += 1
            if state in ("shut down",):
                log(t, f"cpu{c}", "memcg_kmem_get_cache: cache gone, root cache used")
                nesting[c] -= 1
                continue
            got = refcount > 0 and (percpu or state in ("killed", "draining"))
            if got:
                refcount += 1
            # out_unlock:
            if variant == "v4":
                nesting[c] += 1  # rcu_read_lock() where rcu_read_unlock() belonged
            else:
                nesting[c] -= 1
            log(t, f"cpu{c}", "memcg_kmem_get_cache: rcu_read_lock, percpu_ref_tryget "
                f"{'ok' if got else 'failed'}, out_unlock: "
                f"{'rcu_read_lock() (bug)' if variant == 'v4' else 'rcu_read_unlock()'}")
            sleeping = nesting[c] > 0
            log(t + 0.1, f"cpu{c}", "kmem_cache_alloc(GFP_KERNEL) may sleep",
                "sleeping function called from invalid context: inside an RCU read-side "
                "critical section" if sleeping else None)
            if got:
                put(t + 0.2, 1, f"cpu{c}", "memcg_kmem_put_cache: percpu_ref_put")
        elif ev.kind == "offline":
            state = "deactivating"
            log(t, "memcg", "css offline: memcg_deactivate_kmem_caches"
                + (", caches reparented to the parent" if variant == "5.3" else ""))
            call_rcu(t, "deactivate")
        elif ev.kind == "deactivate":
            log(t, "rcu", "grace period over: queue the deactivation work")
            push(t + work_ms, "deactivate_work")
        elif ev.kind == "deactivate_work":
            log(t, "workqueue", "__kmemcg_cache_deactivate_after_rcu: shrink (free empty "
                "slabs), percpu_ref_kill")
            state = "killed"
            call_rcu(t, "atomic")
        elif ev.kind == "atomic":
            percpu = False
            state = "draining" if refcount > 1 else state
            put(t, 1, "rcu", "percpu_ref switched to atomic mode; initial ref dropped")
        elif ev.kind == "page_free":
            if refcount <= 0:
                continue
            put(t, 1 << order, "reclaim", f"slab page freed: percpu_ref_put_many({1 << order})")
        elif ev.kind == "shutdown":
            log(t, "rcu", "grace period over: queue the shutdown work")
            push(t + work_ms, "shutdown_work")
        elif ev.kind == "shutdown_work":
            violation = None if refcount == 0 else f"shutdown with refcount {refcount}"
            state = "shut down"
            log(t, "workqueue", "shutdown_cache: sysfs removed, memcg_unlink_cache", violation)
            state = "css put"
            out.css_put = True
            log(t, "workqueue", "css_put(" + ("parent" if variant == "5.3" else "memcg") + ")")
    if pending_gp:
        stuck = ", ".join(cb for cb, _ in pending_gp)
        cpus_held = sorted({c for _, w in pending_gp for c in w})
        out.violations.append(
            f"grace period never ended (read-side sections on "
            f"{', '.join(f'cpu{c}' for c in cpus_held)} never closed): {stuck} never ran")
    out.final_state = state
    return out
