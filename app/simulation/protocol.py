"""The protocol of one per-memcg kmem_cache under the 2019 series, call by call.

Each variant is the code as written: the calls of memcg_kmem_get_cache() and
memcg_kmem_put_cache() around an allocation, of css offline, of the deactivation and release
callbacks and of the shutdown work, quoted from the v4 5/7 patch as posted (reviewed by Shakeel
Butt, 2019-05-14), its v5 ("s/rcu_read_lock()/rcu_read_unlock() in memcg_kmem_get_cache()")
and 5.3's mm/slab_common.c (kernel-notes.md 1.3, 2(b), 2(c)). The sequences are data:
`SEQUENCES[variant]`. They run through an RCU checker that knows nothing of the variants:

* per CPU it keeps the read-side nesting (rcu_read_lock/unlock) and the spinlocks held, and
  the call site of every section still open;
* a grace period started by call_rcu() (or percpu_ref_kill's switch to atomic mode) ends once
  every CPU has passed a quiescent state after it started: a scheduler tick or a context
  switch while the CPU is outside every read-side section (non-preemptible RCU);
* might_sleep() inside a read-side section or under a spinlock is "BUG: sleeping function
  called from invalid context"; a context switch inside one is "suspicious RCU usage: Illegal
  context switch in RCU read-side critical section" (Waiman Long's boot log, 2019-05-21; the
  0-day robot's 560 boots); an unlock without a lock is an imbalance.

With v4's `out_unlock: rcu_read_lock();` the checker finds the open sections, grace periods
stop ending, the deactivation queued at offline never runs, and the cache never drops its css
reference: the memcg is never released. v5 and 5.3 run the cache to its css_put.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Variant = Literal["v4", "v5", "5.3"]
VARIANTS: tuple[Variant, ...] = ("v4", "v5", "5.3")
SLEEPING = "BUG: sleeping function called from invalid context"
ILLEGAL_SWITCH = "suspicious RCU usage: Illegal context switch in RCU read-side critical section"
ATOMIC_SWITCH = "BUG: scheduling while atomic"
CALL_MS = 0.01  # time between two calls of one sequence [assumption: only orders them]


@dataclass(frozen=True, slots=True)
class Call:
    """One call as the variant's code writes it: what it does (`fn`) and the line itself.

    `arg` names the callback of call_rcu, the work item of queue_work, or the sequence a
    percpu_ref release runs.
    """

    fn: str
    code: str
    arg: str = ""


# mm/slab.h slab_pre_alloc_hook (5.x): every allocation may sleep with GFP_KERNEL, and looks up
# the memcg's cache; slab_post_alloc_hook puts it.
_PRE_ALLOC = Call("might_sleep", "mm/slab.h slab_pre_alloc_hook: "
                  "might_sleep_if(gfpflags_allow_blocking(flags));")


def _get_cache(out_unlock: Call) -> tuple[Call, ...]:
    return (
        _PRE_ALLOC,
        Call("rcu_read_lock", "memcg_kmem_get_cache: rcu_read_lock();"),
        Call("lookup", "memcg = mem_cgroup_from_task(current); kmemcg_id = "
             "READ_ONCE(memcg->kmemcg_id); arr = rcu_dereference(cachep->memcg_params."
             "memcg_caches); memcg_cachep = READ_ONCE(arr->entries[kmemcg_id]);"),
        Call("percpu_ref_tryget", "else if (percpu_ref_tryget(&memcg_cachep->memcg_params."
             "refcnt)) cachep = memcg_cachep;"),
        out_unlock,
        Call("alloc", "slab_alloc_node(cachep, flags, ...): the object comes from the cache"),
        Call("percpu_ref_put", "memcg_kmem_put_cache: if (!is_root_cache(cachep)) "
             "percpu_ref_put(&cachep->memcg_params.refcnt);"),
        Call("schedule", "the task blocks after its system call: schedule()"),
    )


_UNLOCK = Call("rcu_read_unlock", "out_unlock: rcu_read_unlock();")
_OFFLINE = (
    Call("clear_slot", "memcg_deactivate_kmem_caches: arr->entries[kmemcg_id] = NULL"),
    Call("call_rcu", "kmemcg_cache_deactivate: call_rcu(&s->memcg_params.rcu_head, "
         "kmemcg_schedule_work_after_rcu);", "deactivate"),
)
_REPARENT = Call("reparent", "memcg_deactivate_kmem_caches(memcg, parent): "
                 "WRITE_ONCE(s->memcg_params.memcg, parent); css_put(&memcg->css); "
                 "css_get_many(&parent->css, nr_reparented);")
_AFTER_RCU = (Call("queue_work", "kmemcg_schedule_work_after_rcu: "
                   "queue_work(memcg_kmem_cache_wq, &s->memcg_params.work);",
                   "deactivate_work"),)
_DEACTIVATE_WORK = (
    Call("shrink", "kmemcg_cache_deactivate_after_rcu: __kmemcg_cache_deactivate_after_rcu(s) "
         "(__kmem_cache_shrink)"),
    Call("percpu_ref_kill", "percpu_ref_kill(&s->memcg_params.refcnt);"),
)
_SHUTDOWN_AFTER_RCU = (Call("queue_work", "kmemcg_schedule_work_after_rcu: "
                            "queue_work(memcg_kmem_cache_wq, &s->memcg_params.work);",
                            "shutdown_work"),)
_SHUTDOWN_WORK = (
    Call("shutdown_cache", "WARN_ON(shutdown_cache(s));"),
    Call("css_put", "memcg_unlink_cache(s): css_put(&s->memcg_params.memcg->css);"),
)
_RELEASE_V4 = (  # kmemcg_queue_cache_shutdown, the percpu_ref release callback (v4 5/7)
    Call("spin_lock", "kmemcg_queue_cache_shutdown: spin_lock(&memcg_kmem_wq_lock);"),
    Call("call_rcu", "call_rcu(&s->memcg_params.rcu_head, kmemcg_schedule_work_after_rcu);",
         "shutdown"),
    Call("spin_unlock", "spin_unlock(&memcg_kmem_wq_lock);"),
)
_RELEASE_53 = (  # kmemcg_cache_shutdown (5.3): work directly, no extra RCU wait
    Call("spin_lock", "kmemcg_cache_shutdown: spin_lock_irqsave(&memcg_kmem_wq_lock, flags);"),
    Call("queue_work", "queue_work(memcg_kmem_cache_wq, &s->memcg_params.work);",
         "shutdown_work"),
    Call("spin_unlock", "spin_unlock_irqrestore(&memcg_kmem_wq_lock, flags);"),
)

Sequences = Mapping[str, tuple[Call, ...]]
SEQUENCES: dict[Variant, dict[str, tuple[Call, ...]]] = {
    "v4": {"alloc": _get_cache(Call("rcu_read_lock", "out_unlock: rcu_read_lock();")),
           "offline": _OFFLINE, "deactivate": _AFTER_RCU, "deactivate_work": _DEACTIVATE_WORK,
           "release": _RELEASE_V4, "shutdown": _SHUTDOWN_AFTER_RCU,
           "shutdown_work": _SHUTDOWN_WORK},
    "v5": {"alloc": _get_cache(_UNLOCK), "offline": _OFFLINE, "deactivate": _AFTER_RCU,
           "deactivate_work": _DEACTIVATE_WORK, "release": _RELEASE_V4,
           "shutdown": _SHUTDOWN_AFTER_RCU, "shutdown_work": _SHUTDOWN_WORK},
    "5.3": {"alloc": _get_cache(_UNLOCK), "offline": (_OFFLINE[0], _REPARENT, _OFFLINE[1]),
            "deactivate": _AFTER_RCU, "deactivate_work": _DEACTIVATE_WORK,
            "release": _RELEASE_53, "shutdown_work": _SHUTDOWN_WORK},
}


@dataclass(frozen=True, slots=True)
class Step:
    """One call or event of the protocol, and the state right after it."""

    t_ms: float
    actor: str  # "cpu0", "rcu", "workqueue", "memcg", "reclaim"
    event: str
    state: str
    refcount: int
    percpu_mode: bool
    rcu_nesting: tuple[int, ...]
    grace_periods_done: int
    violation: str | None = None
    call: str | None = None  # the line of code run, as the variant writes it


@dataclass(slots=True)
class ProtocolRun:
    """The whole run: steps, what the checker found, where the cache and memcg ended."""

    variant: str
    steps: list[Step] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    final_state: str = "active"
    css_put: bool = False
    memcg_released: bool = False
    summary: str = ""


@dataclass(order=True, slots=True)
class _Ev:
    t: float
    seq: int
    kind: str = field(compare=False)
    cpu: int = field(compare=False, default=0)


class RcuChecker:
    """Per-CPU RCU read-side nesting, spinlocks and grace periods; reports misuse.

    It knows calls, not variants: `enter`/`exit` of read-side sections, spinlocks,
    might_sleep, context switches and ticks (quiescent states), and call_rcu.
    """

    def __init__(self, cpus: int) -> None:
        self.nesting = [0] * cpus
        self.spinlocks = [0] * cpus
        self.open_sites: list[list[str]] = [[] for _ in range(cpus)]  # call site per section
        self.pending: list[tuple[str, set[int]]] = []  # callback -> CPUs yet to quiesce
        self.done = 0

    def lock(self, cpu: int, site: str) -> None:
        self.nesting[cpu] += 1
        self.open_sites[cpu].append(site)

    def unlock(self, cpu: int) -> str | None:
        if self.nesting[cpu] == 0:
            return "rcu_read_unlock() without rcu_read_lock(): read-side nesting went negative"
        self.nesting[cpu] -= 1
        self.open_sites[cpu].pop()
        return None

    def spin(self, cpu: int, delta: int) -> str | None:
        if self.spinlocks[cpu] + delta < 0:
            return "spin_unlock() of a lock not held"
        self.spinlocks[cpu] += delta
        return None

    def might_sleep(self, cpu: int) -> str | None:
        if self.nesting[cpu] > 0:
            return (f"{SLEEPING}: in an RCU read-side critical section (nesting "
                    f"{self.nesting[cpu]}, opened by {self.open_sites[cpu][-1]!r})")
        if self.spinlocks[cpu] > 0:
            return f"{SLEEPING}: under a spinlock"
        return None

    def context_switch(self, cpu: int) -> tuple[str | None, list[str]]:
        """A schedule() on the CPU: a quiescent state only outside every section."""
        if self.nesting[cpu] > 0:
            return (f"{ILLEGAL_SWITCH} (nesting {self.nesting[cpu]}, opened by "
                    f"{self.open_sites[cpu][-1]!r})"), []
        if self.spinlocks[cpu] > 0:
            return ATOMIC_SWITCH, []
        return None, self.quiesce(cpu)

    def tick(self, cpu: int) -> list[str]:
        """The scheduler tick: reports a quiescent state if the CPU is outside every section."""
        return self.quiesce(cpu) if self.nesting[cpu] == 0 else []

    def quiesce(self, cpu: int) -> list[str]:
        """Record a quiescent state; return the callbacks whose grace period just ended."""
        ready = []
        for cb, waiting in list(self.pending):
            waiting.discard(cpu)
            if not waiting:
                self.pending.remove((cb, waiting))
                self.done += 1
                ready.append(cb)
        return ready

    def call_rcu(self, cb: str) -> None:
        """Start a grace period for `cb`: every CPU must pass a quiescent state first."""
        self.pending.append((cb, set(range(len(self.nesting)))))

    def stuck(self) -> list[str]:
        """What the run ended with: grace periods that never ended, and why."""
        out = []
        if self.pending:
            held = [c for c in range(len(self.nesting)) if self.nesting[c] > 0]
            why = "; ".join(f"cpu{c} never left its read-side section (nesting "
                            f"{self.nesting[c]}, opened by "
                            f"{', '.join(repr(s) for s in sorted(set(self.open_sites[c])))})"
                            for c in held) or "no CPU passed a quiescent state"
            out.append(f"grace period never ended ({why}): "
                       f"{', '.join(cb for cb, _ in self.pending)} never ran")
        return out


def run(variant: Variant, *, cpus: int = 2, pages: int = 3, order: int = 0,
        offline_ms: float = 10.0, allocs: tuple[tuple[int, float], ...] | None = None,
        page_free_ms: tuple[float, ...] = (40.0, 60.0, 90.0), gp_ms: float = 8.0,
        work_ms: float = 2.0, horizon_ms: float = 400.0,
        sequences: Sequences | None = None) -> ProtocolRun:
    """Run one cache through allocations, offline and draining; `allocs` are (cpu, ms).

    `sequences` replaces the variant's code (a test mutates v5's to see the checker catch
    it). `gp_ms` is the scheduler tick period, the quiescent-state opportunity of each CPU.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}")
    code: Sequences = sequences if sequences is not None else SEQUENCES[variant]
    allocs = allocs if allocs is not None else ((0, 2.0), (1, 5.0), (0, 12.0), (1, 30.0))
    out = ProtocolRun(variant)
    rcu = RcuChecker(cpus)
    refcount = 1 + pages * (1 << order)  # the initial ref, and 1 << order per charged page
    percpu = True
    state = "active"
    owner = "memcg"  # whom the cache's css reference is on (5.3 moves it to the parent)
    memcg_refs = 1  # css refs on the dying memcg held by this cache
    queue: list[_Ev] = []
    seq = 0

    def push(t: float, kind: str, cpu: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, _Ev(t, seq, kind, cpu))

    def log(t: float, actor: str, event: str, violation: str | None = None,
            call: str | None = None) -> None:
        if violation:
            out.violations.append(f"{t:.1f} ms {actor}: {violation}")
        out.steps.append(Step(t, actor, event, state, refcount, percpu, tuple(rcu.nesting),
                              rcu.done, violation, call))

    def released(t: float, cbs: list[str], actor: str) -> None:
        for cb in cbs:
            log(t, "rcu", f"grace period over: {cb} callback runs")
            dispatch(t, cb, 0)

    def put(t: float, n: int, actor: str, what: str, call: str | None) -> None:
        nonlocal refcount, state
        refcount -= n
        log(t, actor, what, "percpu_ref went negative" if refcount < 0 else None, call)
        if refcount == 0 and not percpu:
            state = "zero"
            log(t, actor, "percpu_ref reached zero: its release callback runs")
            dispatch(t, "release", 0)

    def execute(t: float, actor: str, cpu: int, name: str) -> None:
        """Run one sequence of calls on a CPU (allocations) or in a kernel context."""
        nonlocal refcount, percpu, state, owner, memcg_refs
        found = got = False
        for call in code.get(name, ()):
            t += CALL_MS
            v: str | None = None
            fn = event = call.fn
            if fn == "rcu_read_lock":
                rcu.lock(cpu, call.code)
            elif fn == "rcu_read_unlock":
                v = rcu.unlock(cpu)
            elif fn == "spin_lock":
                rcu.spin(cpu, 1)
            elif fn == "spin_unlock":
                v = rcu.spin(cpu, -1)
            elif fn == "might_sleep":
                v = rcu.might_sleep(cpu)
            elif fn == "schedule":
                v, ready = rcu.context_switch(cpu)
                log(t, actor, "context switch" + ("" if v else ": a quiescent state"), v,
                    call.code)
                released(t, ready, actor)
                continue
            elif fn == "lookup":
                found = state == "active"  # the array slot is cleared at offline
                event = ("lookup: the memcg's cache" if found else
                         "lookup: slot cleared at offline, the root cache is used")
            elif fn == "percpu_ref_tryget":
                if found and refcount > 0:
                    got = True
                    refcount += 1
                event = f"percpu_ref_tryget: {'ok' if got else 'not called (root cache)'}"
            elif fn == "alloc":
                event = "allocate from " + ("the memcg's cache" if got else "the root cache")
            elif fn == "percpu_ref_put":
                if got:
                    put(t, 1, actor, "memcg_kmem_put_cache: percpu_ref_put", call.code)
                    continue
                event = "memcg_kmem_put_cache: root cache, nothing to put"
            elif fn == "clear_slot":
                state = "deactivating"
            elif fn == "reparent":
                owner = "parent"
                memcg_refs -= 1
            elif fn == "call_rcu":
                rcu.call_rcu(call.arg)
                log(t, actor, f"call_rcu({call.arg}): a grace period starts", None, call.code)
                continue
            elif fn == "queue_work":
                push(t + work_ms, call.arg)
            elif fn == "shrink":
                pass
            elif fn == "percpu_ref_kill":
                state = "killed"
                rcu.call_rcu("percpu_ref_switch_to_atomic")
            elif fn == "shutdown_cache":
                if refcount != 0:
                    v = f"shutdown_cache with percpu_ref {refcount}: WARN_ON"
                state = "shut down"
            elif fn == "css_put":
                out.css_put = True
                if owner == "memcg":
                    memcg_refs -= 1
                state = "css put"
                log(t, actor, f"css_put({owner})", None, call.code)
                continue
            else:
                v = f"unknown call {fn!r}"
            log(t, actor, event, v, call.code)

    def dispatch(t: float, kind: str, cpu: int) -> None:
        """Handle one event; RCU callbacks and release callbacks run inline, when due."""
        nonlocal percpu, state
        if kind == "tick":
            released(t, rcu.tick(cpu), f"cpu{cpu}")
        elif kind == "alloc":
            execute(t, f"cpu{cpu}", cpu, "alloc")
        elif kind == "offline":
            log(t, "memcg", "css offline: memcg_deactivate_kmem_caches")
            execute(t, "memcg", cpus - 1, "offline")
        elif kind == "percpu_ref_switch_to_atomic":
            percpu = False
            state = "draining" if refcount > 1 else state
            put(t, 1, "rcu", "percpu_ref switched to atomic mode; the initial ref dropped",
                None)
        elif kind == "page_free":
            if refcount > 0:
                put(t, 1 << order, "reclaim", "slab page freed",
                    f"memcg_uncharge_slab: percpu_ref_put_many(&s->memcg_params.refcnt, "
                    f"{1 << order});")
        elif kind == "release":
            state = "shutdown queued"
            execute(t, "rcu", cpus - 1, "release")
        elif kind in ("deactivate_work", "shutdown_work"):
            execute(t, "workqueue", cpus - 1, kind)
        else:  # an RCU callback
            execute(t, "rcu", cpus - 1, kind)

    # Ticks first: at equal times a tick is handled before what was scheduled then.
    for c in range(cpus):  # each CPU's scheduler tick: a chance to report a quiescent state
        t = gp_ms / 2
        while t < horizon_ms:
            push(t, "tick", c)
            t += gp_ms
    for cpu, at in allocs:
        push(at, "alloc", cpu)
    push(offline_ms, "offline")
    for at in page_free_ms[:pages]:
        push(at, "page_free")

    while queue:
        ev = heapq.heappop(queue)
        if ev.t > horizon_ms:
            break
        dispatch(ev.t, ev.kind, ev.cpu)
    out.violations.extend(rcu.stuck())
    out.final_state = state
    out.memcg_released = memcg_refs == 0
    out.summary = _summary(out, owner, rcu)
    return out


def _summary(r: ProtocolRun, owner: str, rcu: RcuChecker) -> str:
    """What the run means for the user: is the memcg released, and if not, why."""
    if r.memcg_released and owner == "parent":
        return ("The memcg is released right after offline: its cache was reparented and "
                "its css reference moved to the parent. The zombie cache pins the parent "
                f"until it drains; it ended {r.final_state!r}.")
    if r.memcg_released:
        return ("The memcg is released: the cache drained, its percpu_ref reached zero, "
                "the shutdown work ran and dropped the cache's css reference.")
    held = [c for c in range(len(rcu.nesting)) if rcu.nesting[c] > 0]
    if held:
        return ("The memcg is never released: read-side sections left open on "
                f"{', '.join(f'cpu{c}' for c in held)} stop every grace period, so the "
                "deactivation queued at offline never runs, the cache's percpu_ref is never "
                "killed and its css reference on the memcg is never put. The cgroup stays "
                "dying (nr_dying_descendants) with its memory, and the next allocation on "
                "those CPUs sleeps in atomic context.")
    return (f"The memcg is not released within the run: the cache ended {r.final_state!r} "
            "with its css reference still held.")
