"""A synthetic host for bench/scale.py: a /proc and /sys whose cgroup trees are as large as
the hosts slabscope is for, built from real kernel text, changing while the collector reads.

Layouts:
  * v2: cgroup2 with the memory controller; memory.stat of a real cgroup2 pod
    (tests/fixtures/third_party/opencontainers-cgroups/fs2-pod-cgroup), memory.current,
    cgroup.stat; the root's cgroup.stat carries nr_dying_descendants.
  * v1: the v1 memory hierarchy; memory.stat of this VM's kernel (tests/fixtures/host-6.18),
    memory.usage_in_bytes, memory.kmem.usage_in_bytes; /proc/cgroups carries the dying count
    (num_cgroups = visible directories + dying).

/proc/slabinfo, meminfo and vmstat are this machine's own (symlinks, so they change every
tick as on a real host); /sys/kernel/slab is this machine's SLUB sysfs.

The Mutator rewrites every cgroup's files with new values once per `period` seconds (atomic
rename, so a reader never sees half a file) and creates and removes `churn_per_minute`
cgroups a minute under /churn.slice with lifetimes drawn from [5 s, 300 s), logging each
(path, created, removed) so the bench can check what the database recorded.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
V2_STAT = ROOT / "tests/fixtures/third_party/opencontainers-cgroups/fs2-pod-cgroup/memory.stat"
V1_STAT = ROOT / "tests/fixtures/host-6.18/sys/fs/cgroup/memory/memory.stat"
SLICES = 100
# Every cgroup directory also holds empty entries named like a real one's control files, so a
# listing (scandir) of a parent costs what it costs on a host.
V1_CONTROL = ("cgroup.clone_children", "cgroup.event_control", "cgroup.procs",
              "memory.failcnt", "memory.force_empty", "memory.kmem.failcnt",
              "memory.kmem.limit_in_bytes", "memory.kmem.max_usage_in_bytes",
              "memory.kmem.slabinfo", "memory.kmem.tcp.failcnt",
              "memory.kmem.tcp.limit_in_bytes", "memory.kmem.tcp.max_usage_in_bytes",
              "memory.kmem.tcp.usage_in_bytes", "memory.limit_in_bytes",
              "memory.max_usage_in_bytes", "memory.memsw.failcnt", "memory.memsw.limit_in_bytes",
              "memory.memsw.max_usage_in_bytes", "memory.memsw.usage_in_bytes",
              "memory.move_charge_at_immigrate", "memory.numa_stat", "memory.oom_control",
              "memory.pressure_level", "memory.soft_limit_in_bytes", "memory.swappiness",
              "memory.use_hierarchy", "notify_on_release", "tasks")
V2_CONTROL = ("cgroup.controllers", "cgroup.events", "cgroup.freeze", "cgroup.kill",
              "cgroup.max.depth", "cgroup.max.descendants", "cgroup.pressure", "cgroup.procs",
              "cgroup.subtree_control", "cgroup.threads", "cgroup.type", "cpu.pressure",
              "cpu.stat", "io.pressure", "memory.events", "memory.events.local",
              "memory.high", "memory.low", "memory.max", "memory.min", "memory.numa_stat",
              "memory.oom.group", "memory.peak", "memory.pressure", "memory.reclaim",
              "memory.swap.current", "memory.swap.events", "memory.swap.high",
              "memory.swap.max", "memory.swap.peak", "memory.zswap.current",
              "memory.zswap.max", "memory.zswap.writeback")


def _template(path: Path) -> list[tuple[str, int]]:
    out = []
    for line in path.read_text().splitlines():
        k, v = line.split()
        out.append((k, int(v)))
    return out


def _scaled(v: int, f: float, rng: random.Random) -> int:
    # Byte counts stay page multiples; small counts (events, limits) keep their value.
    return int(v * f * rng.uniform(0.9, 1.1)) // 4096 * 4096 if v > 4096 else v


def _write(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Tree:
    """Where the synthetic host is and what it holds."""

    base: Path
    layout: str
    live: int
    dying: int
    hostname: str
    cg_root: Path = field(init=False)
    template: list[tuple[str, int]] = field(init=False)
    paths: list[str] = field(default_factory=list)  # relative, "/slice-3/job-17"

    def __post_init__(self) -> None:
        self.cg_root = self.base / ("sys/fs/cgroup" if self.layout == "v2"
                                    else "sys/fs/cgroup/memory")
        self.template = _template(V2_STAT if self.layout == "v2" else V1_STAT)

    @property
    def proc(self) -> str:
        return str(self.base / "proc")

    @property
    def sys(self) -> str:
        return str(self.base / "sys")

    def stat_text(self, rng: random.Random) -> str:
        """A memory.stat with the template's keys and values scaled by a random factor."""
        f = rng.uniform(0.001, 0.02)
        return "".join(f"{k} {_scaled(v, f, rng)}\n" for k, v in self.template)

    def write_cgroup(self, rel: str, rng: random.Random, create: bool = False) -> None:
        d = self.cg_root / rel.lstrip("/") if rel != "/" else self.cg_root
        if create:
            d.mkdir(parents=True, exist_ok=True)
            for name in V2_CONTROL if self.layout == "v2" else V1_CONTROL:
                (d / name).touch()
        _write(d / "memory.stat", self.stat_text(rng))
        usage = str(rng.randrange(1 << 20, 1 << 30) // 4096 * 4096) + "\n"
        if self.layout == "v2":
            if rel != "/":
                _write(d / "memory.current", usage)
            kids = sum(1 for e in os.scandir(d) if e.is_dir()) if rel.count("/") == 1 else 0
            dying = rng.randrange(0, 100) if rel != "/" else self.dying
            desc = kids if rel != "/" else len(self.paths)
            _write(d / "cgroup.stat", f"nr_descendants {desc}\nnr_subsys_memory {desc + 1}\n"
                                      f"nr_dying_descendants {dying}\n"
                                      f"nr_dying_subsys_memory {dying}\n")
        else:
            _write(d / "memory.usage_in_bytes", usage)
            _write(d / "memory.kmem.usage_in_bytes", str(int(usage) // 8) + "\n")

    def write_proc_cgroups(self, visible: int) -> None:
        num = visible + self.dying
        rows = ["#subsys_name\thierarchy\tnum_cgroups\tenabled", "cpu\t1\t1\t1"]
        rows.append(f"memory\t{4 if self.layout == 'v1' else 0}\t{num}\t1")
        _write(self.base / "proc/cgroups", "\n".join(rows) + "\n")


def build(base: Path, layout: str, live: int, dying: int, seed: int = 1) -> Tree:
    """Create the synthetic host under `base` (best on tmpfs)."""
    rng = random.Random(seed)
    t = Tree(base, layout, live, dying, f"scale-{layout}")
    proc = base / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "sys/kernel/random").mkdir(parents=True)
    (proc / "sys/kernel/osrelease").write_text("6.18.44-scale\n")
    (proc / "sys/kernel/hostname").write_text(t.hostname + "\n")
    (proc / "sys/kernel/random/boot_id").write_text("5ca1e000-0000-4000-8000-00000000b007\n")
    for name in ("slabinfo", "meminfo", "vmstat"):
        os.symlink(f"/proc/{name}", proc / name)
    (base / "etc").mkdir()
    (base / "etc/machine-id").write_text("5ca1e0000000400080000000000b0070\n")
    if layout == "v2":
        mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
    else:
        mounts = "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n"
    (proc / "1/mounts").write_text(mounts)
    sysd = base / "sys"
    (sysd / "kernel").mkdir(parents=True)
    os.symlink("/sys/kernel/slab", sysd / "kernel/slab")
    for what, text in (("cpu", "0-1\n"), ("node", "0\n")):
        (sysd / "devices/system" / what).mkdir(parents=True)
        (sysd / "devices/system" / what / "possible").write_text(text)
    t.cg_root.mkdir(parents=True)
    if layout == "v2":
        (t.cg_root / "cgroup.controllers").write_text("cpu memory pids\n")
    per = max(1, (live - SLICES) // SLICES)
    for s in range(SLICES):
        t.paths.append(f"/slice-{s}")
        for j in range(per):
            t.paths.append(f"/slice-{s}/job-{j}")
    (t.cg_root / "churn.slice").mkdir()
    t.paths.append("/churn.slice")
    for rel in t.paths:
        t.write_cgroup(rel, rng, create=True)
    t.write_cgroup("/", rng)
    t.write_proc_cgroups(len(t.paths) + 1)
    return t


@dataclass
class ChurnRecord:
    path: str
    created: float
    removed: float | None = None


class Mutator:
    """Changes the tree while the collector runs: values every `period`, churn continuously."""

    def __init__(self, tree: Tree, period: float = 15.0, churn_per_minute: float = 100.0,
                 seed: int = 2) -> None:
        self.tree = tree
        self.period = period
        self.churn = churn_per_minute
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.log: list[ChurnRecord] = []
        self._live: list[tuple[float, ChurnRecord]] = []  # (remove at, record)
        self._n = 0
        self._lock = threading.Lock()
        self.passes = 0

    def _create(self, n: int) -> str:
        rel = f"/churn.slice/job-{n}"
        self.tree.write_cgroup(rel, self.rng, create=True)
        return rel

    def _remove(self, rel: str) -> None:
        shutil.rmtree(self.tree.cg_root / rel.lstrip("/"), ignore_errors=True)

    def _churn_step(self, now: float) -> None:
        """Create one cgroup with a lifetime in [5 s, 300 s); remove those whose time came."""
        rec = ChurnRecord(self._create(self._n), time.time())
        self._n += 1
        with self._lock:
            self.log.append(rec)
        self._live.append((now + self.rng.uniform(5.0, 300.0), rec))
        due = [x for x in self._live if x[0] <= now]
        self._live = [x for x in self._live if x[0] > now]
        for _, r in due:
            self._remove(r.path)
            r.removed = time.time()
        self._after_churn()

    def _after_churn(self) -> None:
        self.tree.write_proc_cgroups(len(self.tree.paths) + 1 + len(self._live))

    def run(self) -> None:
        """Rewrite all values once a period, spreading churn evenly in between."""
        gap = 60.0 / self.churn if self.churn > 0 else None
        next_churn = time.monotonic()
        while not self.stop.is_set():
            start = time.monotonic()
            for i, rel in enumerate(self.tree.paths):
                if self.stop.is_set():
                    return
                self.tree.write_cgroup(rel, self.rng)
                if gap is not None and i % 200 == 0:
                    while time.monotonic() >= next_churn:
                        self._churn_step(time.monotonic())
                        next_churn += gap
            self.passes += 1
            while time.monotonic() - start < self.period and not self.stop.is_set():
                if gap is not None and time.monotonic() >= next_churn:
                    self._churn_step(time.monotonic())
                    next_churn += gap
                self.stop.wait(0.05)

    def start(self) -> threading.Thread:
        th = threading.Thread(target=self.run, daemon=True)
        th.start()
        return th


class LiveTree:
    """Real v1 memory cgroups of our own on this kernel: `live` empty cgroups under a parent
    we create (never anything else), read through the real /proc and /sys."""

    V1 = Path("/sys/fs/cgroup/memory")

    def __init__(self, live: int) -> None:
        self.layout = "live-v1"
        self.tag = f"slabscope-scale-{os.getpid()}"
        self.parent = self.V1 / self.tag
        self.parent.mkdir()
        self.proc, self.sys = "/proc", "/sys"
        self.hostname = os.uname().nodename
        self.paths: list[str] = []
        per = max(1, live // 20)
        for s in range(20):
            (self.parent / f"slice-{s}").mkdir()
            self.paths.append(f"/{self.tag}/slice-{s}")
            for j in range(per - 1):
                (self.parent / f"slice-{s}" / f"job-{j}").mkdir()
                self.paths.append(f"/{self.tag}/slice-{s}/job-{j}")
        (self.parent / "churn").mkdir()

    def cleanup(self) -> None:
        """Remove every cgroup we made, children first."""
        for d in sorted((p for p in self.parent.rglob("*") if p.is_dir()),
                        key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            self.parent.rmdir()


class LiveMutator(Mutator):
    """Churn of real cgroups: mkdir, then rmdir after a lifetime in [5 s, 300 s)."""

    def __init__(self, tree: LiveTree, churn_per_minute: float = 100.0, seed: int = 2) -> None:
        self.live_tree = tree
        self.churn = churn_per_minute
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.log = []
        self._live = []
        self._n = 0
        self._lock = threading.Lock()
        self.passes = 0

    def _create(self, n: int) -> str:
        (self.live_tree.parent / "churn" / f"job-{n}").mkdir()
        return f"/{self.live_tree.tag}/churn/job-{n}"

    def _remove(self, rel: str) -> None:
        with contextlib.suppress(OSError):
            (self.live_tree.parent / "churn" / rel.rsplit("/", 1)[1]).rmdir()

    def _after_churn(self) -> None:
        pass  # the kernel keeps /proc/cgroups

    def run(self) -> None:
        gap = 60.0 / self.churn
        nxt = time.monotonic()
        while not self.stop.is_set():
            if time.monotonic() >= nxt:
                self._churn_step(time.monotonic())
                nxt += gap
            self.stop.wait(0.05)
