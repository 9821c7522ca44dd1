"""test_kmem.c, run step by step against a model kernel of each era.

Each selftest of tools/testing/selftests/cgroup/test_kmem.c (kernel-notes.md section 4) is
written here as the steps the C test takes: mkdir, run a process in the cgroup that makes
negative dentries or threads, set memory.high, rmdir, read memory.current, memory.stat and
cgroup.stat, sleep and poll. The steps run against `Kernel`, a small model of one era's
memcg accounting that reads only the era's facts (app/domain/eras.py), never its name:

* charges: memory.current is a hierarchical page counter; memory.stat keys are per-CPU
  deltas folded into the hierarchy past a batch (MEMCG_CHARGE_BATCH) and flushed when
  memory.stat is read (kernel-notes.md 3.7, 6);
* slab: with per-memcg caches (<= 5.8) a cgroup is charged whole slab pages of its own cache
  copy; with obj_cgroups (5.9+) the objects' bytes (kernel-notes.md 2(d), 3.7);
* offline: slab is reparented where it no longer pins (5.3 caches, 5.9 objcg); in the era
  whose non-leaf slab stats drift (5.3 as merged), the child's unflushed per-CPU slab deltas
  are lost instead of flushed (kernel-notes.md 2(c), "Fixes: fb2f2b0adb98");
* percpu: a child's per-CPU stats are charged to its parent where percpu is accounted
  (5.9+, 772616b031f0), with the struct sizes of app/domain/cost.py;
* cgroup.stat nr_dying_descendants: the removed children, with what each still had charged,
  become a workload for the engine (app.simulation.engine.simulate), run in the era.

Pass or fail comes from the C test's own checks on what the steps read.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.domain.cost import model_for_release
from app.domain.eras import ERAS, Era, SlabPin
from app.simulation.engine import simulate
from app.simulation.workload import DENTRY, JobClass, Kind, Leftover, Pressure, Workload

PAGE = 4096
THREAD_STACK = 16 * 1024  # THREAD_SIZE on x86_64 (engine.KSTACK_PAGES pages)
BATCH_PAGES = 32  # MEMCG_CHARGE_BATCH until late 2022 (kernel-notes.md 6)
MIN_PARTIAL = 5  # empty slabs an active SLUB cache keeps per node (kernel-notes.md 2(a))
STEP_SECONDS = 0.001  # one mkdir, rmdir or fork-and-wait [assumption: only orders steps]
RCU_FREE_SECONDS = 0.03  # a dentry freed by reclaim is uncharged after RCU [assumption]
NR_CPUS = 2  # nprocs of the test run (this lab's VM: 2 CPUs)
# test_kmem.c's sizes and windows (kernel-notes.md 4 and 6)
BASIC_DENTRIES = 100_000
DELETION_CHILDREN, DELETION_DENTRIES = 100, 100
STACK_THREADS = 1000
DEAD_CHILDREN, DEAD_DENTRIES = 30, 100
PERCPU_CHILDREN = 1000
POLLS = {"5.9-2025": (5, 1.0), "Dec 2025+": (80, 0.1)}  # reads x interval (seconds)


def max_vmstat_error(nprocs: int) -> int:
    """MAX_VMSTAT_ERROR of test_kmem.c 5.9/5.10: 4096*32*2*nprocs (kernel-notes.md 4)."""
    return PAGE * BATCH_PAGES * 2 * nprocs


@dataclass(slots=True)
class _Memcg:
    path: str
    parent: _Memcg | None
    created: float
    removed: float | None = None
    freed: bool = False
    current: int = 0  # hierarchical page counter, bytes
    stat: dict[str, int] = field(default_factory=dict)  # hierarchical, folded deltas
    pending: dict[tuple[str, int], int] = field(default_factory=dict)  # (key, cpu) -> bytes
    dentries: dict[int, int] = field(default_factory=dict)  # cpu -> live objects charged here
    threads: int = 0
    children: list[_Memcg] = field(default_factory=list)
    percpu_bytes: int = 0  # its own per-CPU stats, charged to the parent
    freeing: int = 0  # bytes freed by reclaim, uncharged after an RCU grace period
    left_dentries: int = 0  # what it had charged when removed (for the engine)
    left_threads: int = 0
    kept_empty: int = 0  # empty slab pages its active cache keeps (min_partial)


class Kernel:
    """One era's memcg accounting, driven by the selftest steps."""

    def __init__(self, era: Era, cpus: int = NR_CPUS, nodes: int = 1) -> None:
        self.era, self.cpus, self.nodes = era, cpus, nodes
        self.t = 0.0
        self.root = _Memcg("/", None, 0.0)
        self.cgroups: dict[str, _Memcg] = {"/": self.root}
        # RCU-delayed uncharges: (due, path, cpu) -> (memcg, bytes)
        self.pending_free: dict[tuple[float, str, int], tuple[_Memcg, int]] = {}

    # -- the interface the C test uses -------------------------------------------------
    def mkdir(self, path: str) -> None:
        """cg_create: a new child; its per-CPU stats are charged to the parent (5.9+)."""
        self._advance(STEP_SECONDS)
        parent_path = path.rsplit("/", 1)[0] or "/"
        parent = self.cgroups[parent_path]
        m = _Memcg(path, parent, self.t)
        parent.children.append(m)
        self.cgroups[path] = m
        if self.era.memory_stat_percpu:
            cost = model_for_release(self.era.cost_release)
            m.percpu_bytes = (cost.per_cpu * self.cpus
                              + cost.per_cpu_node * self.cpus * self.nodes)
            self._charge(parent, "percpu", m.percpu_bytes, 0)

    def rmdir(self, path: str) -> None:
        """cg_destroy: offline; reparent what no longer pins, as the era does."""
        self._advance(STEP_SECONDS)
        m = self.cgroups.pop(path)
        m.removed = self.t
        m.left_dentries, m.left_threads = sum(m.dentries.values()), m.threads
        assert m.parent is not None
        if self.era.slab_pin is SlabPin.NONE:
            self._reparent_slab(m)
        self._maybe_free(m)

    def alloc_dcache(self, path: str, n: int, cpu: int = 0) -> None:
        """alloc_dcache(n): stat() of n missing names, each a negative dentry, charged."""
        m = self.cgroups[path]
        per = DENTRY.objs_per_slab
        while n > 0:  # a slab page's worth at a time: one page charge, or one stock refill
            k = min(n, per - m.dentries.get(cpu, 0) % per)
            self._alloc_dentries(m, cpu, k)
            n -= k
        self._advance(STEP_SECONDS)

    def spawn_threads(self, path: str, n: int) -> None:
        """n threads in the cgroup: each charges its kernel stack (kernel_stack, 4.6+)."""
        m = self.cgroups[path]
        for i in range(n):
            m.threads += 1
            self._charge(m, "kernel_stack", THREAD_STACK, i % self.cpus)
        self._advance(STEP_SECONDS)

    def exit_threads(self, path: str, n: int) -> None:
        """The threads exit: their stacks are uncharged."""
        m = self.cgroups[path]
        for i in range(n):
            m.threads -= 1
            self._charge(m, "kernel_stack", -THREAD_STACK, i % self.cpus)
        self._advance(STEP_SECONDS)

    def set_high(self, path: str, limit: int) -> None:
        """memory.high: reclaim the cgroup's reclaimable dentries until usage fits."""
        m = self.cgroups[path]
        while m.current - m.freeing > limit and self._reclaim_page(m):
            pass
        self._advance(STEP_SECONDS)

    def sleep(self, seconds: float) -> None:
        """The test sleeps: time passes, RCU-delayed frees happen."""
        self._advance(seconds)

    def memory_current(self, path: str) -> int:
        """memory.current."""
        return self.cgroups[path].current

    def memory_stat(self, path: str) -> dict[str, int]:
        """memory.stat: the era's keys, with every descendant's per-CPU deltas flushed."""
        m = self.cgroups[path]
        for d in self._subtree(m):
            for (key, cpu) in list(d.pending):
                self._flush(d, key, cpu)
        keys = ["anon", "file", "kernel_stack", "slab", "sock"]
        if self.era.memory_stat_percpu:
            keys.append("percpu")
        return {k: m.stat.get(k, 0) for k in keys}

    def nr_dying_descendants(self, path: str) -> int:
        """cgroup.stat: removed descendants whose memcg is not freed, from the engine."""
        m = self.cgroups[path]
        removed = [d for d in self._subtree(m, freed=True) if d.removed is not None]
        if not removed:
            return 0
        classes = []
        for d in removed:
            assert d.removed is not None
            leaves = []
            if d.left_dentries:
                leaves.append(Leftover(Kind.SLAB, d.left_dentries, DENTRY))
            if d.left_threads:
                leaves.append(Leftover(Kind.KSTACK, d.left_threads, mean_life_seconds=0.0))
            classes.append(JobClass(d.path, 0.0, d.removed - d.created, tuple(leaves),
                                    period_seconds=max(self.t, 1.0), count=1,
                                    start_seconds=d.created))
        step = 0.01
        w = Workload("selftest", tuple(classes), Pressure(0.0, 0.0),
                     duration_seconds=math.ceil(self.t / step) * step, step_seconds=step,
                     cpus=self.cpus, numa_nodes=self.nodes)
        r = simulate(w, [self.era], aggregates=False).eras[self.era.name]
        return r.dying[-1]

    def kpagecgroup(self) -> bytes:
        """/proc/kpagecgroup: one u64 per page frame, the inode of its memcg (0: none)."""
        ids = {m.path: i + 1 for i, m in enumerate(self._subtree(self.root))}
        out = bytearray()
        for m in self._subtree(self.root):
            pages = m.current // PAGE - sum(c.current // PAGE for c in m.children)
            out += ids[m.path].to_bytes(8, "little") * max(0, pages)
        return bytes(out)

    # -- mechanisms ------------------------------------------------------------------
    def _advance(self, seconds: float) -> None:
        self.t += seconds
        for key in [k for k in self.pending_free if k[0] <= self.t]:
            m, bytes_ = self.pending_free.pop(key)
            m.freeing -= bytes_
            self._charge(m, "slab", -bytes_, key[2])
        for m in list(self._subtree(self.root)):
            self._maybe_free(m)

    def _subtree(self, m: _Memcg, freed: bool = False) -> list[_Memcg]:
        out, todo = [], [m]
        while todo:
            x = todo.pop()
            if freed or not x.freed:
                out.append(x)
            todo.extend(x.children)
        return out

    def _charge(self, m: _Memcg, key: str, delta: int, cpu: int) -> None:
        """Charge (or uncharge) bytes: the page counter at once, the stat per CPU, batched."""
        x: _Memcg | None = m
        while x is not None:
            x.current += delta
            x = x.parent
        m.pending[key, cpu] = m.pending.get((key, cpu), 0) + delta
        if abs(m.pending[key, cpu]) > BATCH_PAGES * PAGE:
            self._flush(m, key, cpu)

    def _flush(self, m: _Memcg, key: str, cpu: int) -> None:
        delta = m.pending.pop((key, cpu), 0)
        x: _Memcg | None = m
        while x is not None:
            x.stat[key] = x.stat.get(key, 0) + delta
            x = x.parent

    def _slab_bytes(self, objects: int) -> int:
        """What `objects` dentries on one CPU charge: whole pages of a per-memcg cache copy,
        or, with obj_cgroups, the objects' bytes."""
        if self.era.per_memcg_caches:
            return math.ceil(objects / DENTRY.objs_per_slab) * PAGE * (1 << DENTRY.order)
        return objects * DENTRY.object_size_bytes

    def _alloc_dentries(self, m: _Memcg, cpu: int, k: int) -> None:
        before = self._slab_bytes(m.dentries.get(cpu, 0))
        m.dentries[cpu] = m.dentries.get(cpu, 0) + k
        grow = self._slab_bytes(m.dentries[cpu]) - before
        if grow:
            self._charge(m, "slab", grow, cpu)

    def _reclaim_page(self, m: _Memcg) -> bool:
        """Free a slab page's worth of the cgroup's dentries, oldest first (uncharged after
        RCU); False when none is left. With per-memcg caches the page is uncharged as its
        last object goes, except the MIN_PARTIAL empty slabs an active cache keeps.
        """
        cpu = max(m.dentries, key=lambda c: m.dentries[c], default=None)
        if cpu is None or m.dentries[cpu] == 0:
            return False
        n = m.dentries[cpu]
        k = n % DENTRY.objs_per_slab or DENTRY.objs_per_slab
        before = self._slab_bytes(n)
        m.dentries[cpu] = n - k
        freed = before - self._slab_bytes(n - k)
        if freed and self.era.per_memcg_caches and m.kept_empty < MIN_PARTIAL * self.nodes:
            m.kept_empty += 1  # SLUB keeps it on the node's partial list, still charged
            freed = 0
        if freed:
            key = (self.t + RCU_FREE_SECONDS, m.path, cpu)
            held = self.pending_free.get(key, (m, 0))[1]
            self.pending_free[key] = (m, held + freed)
            m.freeing += freed
        return True

    def _reparent_slab(self, child: _Memcg) -> None:
        """Move the child's slab charge to the parent at offline (the zombie caches of 5.3,
        the obj_cgroups of 5.9+).

        Folded stats are already in the parent's hierarchical counters. The child's unflushed
        per-CPU slab deltas are flushed to the ancestors, or, where non-leaf slab stats
        drift (5.3 as merged), lost.
        """
        for key in [k for k in child.pending if k[0] == "slab"]:
            if self.era.nonleaf_slab_stats_drift:
                child.pending.pop(key)
            else:
                self._flush(child, *key)
        charged = sum(self._slab_bytes(n) for n in child.dentries.values())
        child.current -= charged  # the page counter: the parent's total is unchanged
        child.dentries = {}  # the objects now belong to the parent's zombie cache / objcg

    def _pinned(self, m: _Memcg) -> bool:
        """Whether something the era counts as a pin still holds the removed memcg."""
        if self.era.slab_pin is not SlabPin.NONE and any(n > 0 for n in m.dentries.values()):
            return True
        return bool(self.era.kmem_pages_pin and m.threads)

    def _maybe_free(self, m: _Memcg) -> None:
        """A removed, unpinned memcg is freed after the era's release delay; its per-CPU
        stats are uncharged from the parent."""
        if m.removed is None or m.freed or self._pinned(m):
            return
        if self.t < m.removed + self.era.release_delay_seconds:
            return
        m.freed = True
        if m.percpu_bytes and m.parent is not None:
            self._charge(m.parent, "percpu", -m.percpu_bytes, 0)


@dataclass(frozen=True, slots=True)
class SelftestOutcome:
    """What a test_kmem test does in one era, and why (what its checks read)."""

    test: str
    era: str
    passes: bool
    why: str


Check = tuple[bool, str]


def test_kmem_basic(k: Kernel) -> Check:
    """100000 negative dentries, then memory.high=1M and a second "for RCU freeing"."""
    cg = "/kmem_basic_test"
    k.mkdir(cg)
    k.alloc_dcache(cg, BASIC_DENTRIES)
    slab0 = k.memory_stat(cg)["slab"]
    if slab0 < 1 << 20:
        return False, f"slab {slab0:,} B after {BASIC_DENTRIES:,} dentries: under 1 MiB"
    k.set_high(cg, 1 << 20)
    k.sleep(1.0)
    slab1, current = k.memory_stat(cg)["slab"], k.memory_current(cg)
    k.rmdir(cg)
    ok = slab1 < slab0 / 2 and current < slab0 / 2
    return ok, (f"slab {slab0:,} B, then {slab1:,} B with memory.high=1M; memory.current "
                f"{current:,} B: {'both' if ok else 'not both'} under half")


def test_kmem_memcg_deletion(k: Kernel) -> Check:
    """100 children, each 2*nprocs threads x 100 dentries, removed; stats vs current."""
    parent = "/kmem_memcg_deletion_test"
    k.mkdir(parent)
    for i in range(DELETION_CHILDREN):
        child = f"{parent}/child{i}"
        k.mkdir(child)
        threads = 2 * k.cpus
        k.spawn_threads(child, threads)
        for th in range(threads):
            k.alloc_dcache(child, DELETION_DENTRIES, cpu=th % k.cpus)
        k.exit_threads(child, threads)
        k.rmdir(child)
    stat = k.memory_stat(parent)
    current = k.memory_current(parent)
    total = stat["slab"] + stat["anon"] + stat["file"] + stat["kernel_stack"]
    err = max_vmstat_error(k.cpus)
    ok = abs(total - current) < err
    return ok, (f"slab+anon+file+kernel_stack {total:,} B against memory.current "
                f"{current:,} B: off by {abs(total - current):,} B, "
                f"{'within' if ok else 'over'} MAX_VMSTAT_ERROR {err:,} B")


def test_kmem_proc_kpagecgroup(k: Kernel) -> Check:
    """Read all of /proc/kpagecgroup in 1 KiB chunks, to EOF."""
    k.mkdir("/kmem_kpagecgroup")
    k.alloc_dcache("/kmem_kpagecgroup", 1000)
    data = k.kpagecgroup()
    reads, pos = 0, 0
    while True:
        chunk = data[pos:pos + 1024]
        reads += 1
        if not chunk:
            break
        pos += len(chunk)
    return pos == len(data), f"{reads} reads of 1 KiB, {pos:,} B, then EOF"


def test_kmem_kernel_stacks(k: Kernel) -> Check:
    """One process with 1000 threads: kernel_stack >= 4096 * 1000."""
    cg = "/kmem_kernel_stacks_test"
    k.mkdir(cg)
    k.spawn_threads(cg, STACK_THREADS)
    stack = k.memory_stat(cg)["kernel_stack"]
    k.exit_threads(cg, STACK_THREADS)
    ok = stack >= PAGE * STACK_THREADS
    return ok, f"kernel_stack {stack:,} B for {STACK_THREADS} threads (need >= 4096 each)"


def test_kmem_dead_cgroups(k: Kernel, poll: str = "5.9-2025") -> Check:
    """30 children with 100 dentries each, removed; poll nr_dying_descendants for 0."""
    parent = "/kmem_dead_cgroups_test"
    k.mkdir(parent)
    for i in range(DEAD_CHILDREN):
        child = f"{parent}/child{i}"
        k.mkdir(child)
        k.alloc_dcache(child, DEAD_DENTRIES)
        k.rmdir(child)
    reads, every = POLLS[poll]
    seen = []
    for _ in range(reads):
        dead = k.nr_dying_descendants(parent)
        seen.append(dead)
        if dead == 0:
            return True, (f"nr_dying_descendants {', '.join(map(str, seen))}: 0 after "
                          f"{every * (len(seen) - 1):g} s")
        k.sleep(every)
    shown = seen if len(seen) <= 6 else [*seen[:3], "...", seen[-1]]
    return False, (f"nr_dying_descendants {', '.join(map(str, shown))} over "
                   f"{reads} reads {every:g} s apart: never 0")


def test_percpu_basic(k: Kernel) -> Check:
    """1000 empty children: memory.current > 0, percpu > 0, current close to percpu+slab."""
    parent = "/percpu_basic_test"
    k.mkdir(parent)
    for i in range(PERCPU_CHILDREN):
        k.mkdir(f"{parent}/child{i}")
    stat = k.memory_stat(parent)
    current = k.memory_current(parent)
    if "percpu" not in stat:
        return False, "memory.stat has no percpu key (cg_read_key_long gives -1)"
    percpu = stat["percpu"]
    err = max_vmstat_error(k.cpus)
    ok = current > 0 and percpu > 0 and abs(current - (percpu + stat["slab"])) < err
    return ok, (f"memory.current {current:,} B, percpu {percpu:,} B for "
                f"{PERCPU_CHILDREN} children")


TESTS: dict[str, Callable[[Kernel], Check]] = {
    "test_kmem_basic": test_kmem_basic,
    "test_kmem_memcg_deletion": test_kmem_memcg_deletion,
    "test_kmem_proc_kpagecgroup": test_kmem_proc_kpagecgroup,
    "test_kmem_kernel_stacks": test_kmem_kernel_stacks,
    "test_kmem_dead_cgroups": test_kmem_dead_cgroups,
    "test_percpu_basic": test_percpu_basic,
}


def selftests(eras: Sequence[str | Era] | None = None, cpus: int = NR_CPUS
              ) -> list[SelftestOutcome]:
    """Every test of test_kmem.c, run in each era (names or Era records), each in a fresh
    model kernel, as the kselftest harness runs them one by one."""
    records = tuple(ERAS[e] if isinstance(e, str) else e for e in (eras or list(ERAS)))
    return list(_run(records, cpus))


@functools.lru_cache(maxsize=32)
def _run(eras: tuple[Era, ...], cpus: int) -> tuple[SelftestOutcome, ...]:
    # Cached: the grid is shown on every /simulate and /api/v1/scenarios request, and the
    # outcome of a frozen Era record and CPU count never changes.
    out = []
    for era in eras:
        for name, test in TESTS.items():
            ok, why = test(Kernel(era, cpus))
            out.append(SelftestOutcome(name, era.name, ok, why))
    return tuple(out)
