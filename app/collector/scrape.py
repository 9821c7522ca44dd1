"""One scrape of one host: every source read once, joined into a Snapshot.

The Collector keeps what is constant for a boot (SLUB geometry, cgroup mounts) so a steady
tick reads only what changes: /proc/slabinfo, /proc/cgroups, /proc/meminfo, /proc/vmstat and
a directory listing of each cgroup hierarchy. Per-cgroup files are read at their own
cadences (`cgwalk`): new cgroups at once, every cgroup in a periodic walk, series and full
tables built from the compact copy the walk keeps. Cadences run on an injectable monotonic
clock, so tests step time instead of sleeping.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.collector import dying
from app.collector.cgstate import Listing
from app.collector.cgwalk import CgroupTracker
from app.collector.errors import CollectorError, ParseError
from app.collector.sources import cgroups as cgsrc
from app.collector.sources import host as hostsrc
from app.collector.sources import procfs, slabinfo, slub
from app.domain.eras import DEFAULT_ERA, ERAS, UnknownRelease, era_for_release
from app.domain.samples import (
    Cache,
    CgroupSample,
    HostIdentity,
    MemcgChildCache,
    MemcgCount,
    MemcgSlabinfoRow,
    ProcCgroupsRow,
    SlabinfoRow,
    SlubGeometry,
    SlubStats,
    Snapshot,
    SourceError,
)

if TYPE_CHECKING:  # the daemon process loads no pydantic (8 MB): see __main__.py
    from app.config import Settings

log = logging.getLogger(__name__)

CONSISTENT_TRIES = 3  # /proc/cgroups read before and after the walk must agree


@dataclass(slots=True)
class CollectorOptions:
    """What a Collector reads and how it names the host."""

    proc_root: str = "/proc"
    sys_root: str = "/sys"
    era: str | None = None
    hostname: str | None = None
    page_size_bytes: int | None = None
    slub_stats: bool = False
    slub_objects: bool = False
    walk_interval_seconds: float = 60.0
    series_interval_seconds: float = 300.0
    full_interval_seconds: float = 21_600.0
    host_full_interval_seconds: float = 3_600.0


def options_from(s: Settings) -> CollectorOptions:
    """The collector options of the settings (the CLI and both daemons use this)."""
    return options_from_values(s.model_dump())


def options_from_values(v: Mapping[str, Any]) -> CollectorOptions:
    """The collector options of settings given as plain values (field name -> value)."""
    return CollectorOptions(proc_root=v["proc_root"], sys_root=v["sys_root"], era=v["era"],
                            hostname=v["hostname"], page_size_bytes=v["page_size_bytes"],
                            slub_stats=v["slub_stats"], slub_objects=v["slub_objects"],
                            walk_interval_seconds=v["cgroup_walk_interval_seconds"],
                            series_interval_seconds=v["cgroup_series_interval_seconds"],
                            full_interval_seconds=v["cgroup_full_stat_interval_seconds"],
                            host_full_interval_seconds=v["host_full_interval_seconds"])


class Cadence:
    """Due at the first check, then every `interval` seconds of a monotonic clock."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        # A tick that starts a hair early (scheduling jitter) still counts as on time.
        self.slack = min(0.02 * interval, 1.0)
        self.next_at: float | None = None

    def due(self, now: float) -> bool:
        """Whether it is time; if so, the next time is one interval from now."""
        if self.next_at is not None and now < self.next_at - self.slack:
            return False
        self.next_at = now + self.interval
        return True


@dataclass(slots=True)
class _BootState:
    boot_id: str | None
    geometry: dict[str, SlubGeometry] = field(default_factory=dict)  # dir -> geometry
    name_to_dir: dict[str, str] = field(default_factory=dict)
    # cache name -> (aliases, order, slab_size, reclaim_account), derived once from geometry
    static: dict[str, tuple[tuple[str, ...], int | None, int | None, bool | None]] = field(
        default_factory=dict)
    hierarchies: list[cgsrc.Hierarchy] = field(default_factory=list)
    layout: str = "none"
    cgroups: CgroupTracker | None = None  # built at the first tick (it needs the era)
    # Constant for a boot, read once: kernel release, machine-id, possible CPUs and nodes.
    release: str | None = None
    machine_id: str | None = None
    cpus: int | None = None
    nodes: int | None = None


class Collector:
    """Scrapes one host (the one whose /proc and /sys are at the given roots)."""

    def __init__(self, options: CollectorOptions,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.options = options
        self.clock = clock
        self.wall = wall
        self._boot: _BootState | None = None
        self.walk = Cadence(options.walk_interval_seconds)
        self.series = Cadence(options.series_interval_seconds)
        self.full = Cadence(options.full_interval_seconds)
        self.host_full = Cadence(options.host_full_interval_seconds)

    def seed_previous(self, cgroups: Iterable[CgroupSample], taken_at: datetime) -> None:
        """Start removal tracking from a stored scrape (the daemon's last one).

        The stored cgroups become the previous listing (and their stored figures the last
        read), so a cgroup removed while the daemon was down is reported at the first tick.
        """
        state = self._boot_state(hostsrc.read_boot_id(self.options.proc_root))
        self._tracker(state).seed(cgroups, taken_at)  # consumed now, one at a time

    def live_cgroups(self) -> list[CgroupSample]:
        """Every live cgroup's last read, rebuilt from the compact copy (CLI, tests)."""
        tracker = self._boot.cgroups if self._boot is not None else None
        if tracker is None:
            return []
        errors: list[CollectorError] = []
        return [tracker.sample(hs, rel, e, errors) for hs in tracker.states
                for rel, e in hs.entries.items() if e.read_at is not None]

    @staticmethod
    def _tracker(state: _BootState) -> CgroupTracker:
        if state.cgroups is None:
            state.cgroups = CgroupTracker(state.hierarchies)
        return state.cgroups

    # -- per-boot state ---------------------------------------------------------------
    def _boot_state(self, boot_id: str | None) -> _BootState:
        if self._boot is None or self._boot.boot_id != boot_id:
            o = self.options
            state = _BootState(boot_id)
            state.hierarchies, state.layout = cgsrc.discover(o.proc_root, o.sys_root)
            state.release = hostsrc.read_release(o.proc_root)
            state.machine_id = hostsrc.read_machine_id(o.proc_root)
            state.cpus = hostsrc.read_possible(o.sys_root, "cpu")
            state.nodes = hostsrc.read_possible(o.sys_root, "node")
            if self._boot is not None:  # a new boot: every cadence starts over
                for c in (self.walk, self.series, self.full, self.host_full):
                    c.next_at = None
            self._boot = state
        return self._boot

    def _refresh_geometry(self, state: _BootState, errors: list[CollectorError]) -> None:
        try:
            dirs = slub.scan_caches(self.options.sys_root)
        except OSError as err:
            errors.append(CollectorError(slub.slab_root(self.options.sys_root),
                                         f"SLUB sysfs unavailable: {err.strerror or err}"))
            return
        for d, names in dirs.items():
            if d not in state.geometry or state.geometry[d].alias_names != names:
                state.geometry[d] = slub.read_geometry(self.options.sys_root, d, names, errors)
            for n in names:
                state.name_to_dir[n] = d
        for d in list(state.geometry):
            if d not in dirs:
                del state.geometry[d]
        state.name_to_dir = {n: d for n, d in state.name_to_dir.items() if d in dirs}
        state.static = {}
        for n, d in state.name_to_dir.items():
            g = state.geometry[d]
            state.static[n] = (tuple(a for a in g.alias_names if a != n), g.order,
                               g.slab_size_bytes, g.reclaim_account)

    # -- the scrape -------------------------------------------------------------------
    def collect(self) -> Snapshot:
        """Read every source once; never raises for a bad or missing file."""
        start = time.perf_counter()
        now = self.clock()
        taken_at = self.wall()
        o = self.options
        errs: list[tuple[str, CollectorError]] = []

        def note(source: str, fn_errors: list[CollectorError]) -> None:
            errs.extend((source, e) for e in fn_errors)
            fn_errors.clear()

        scratch: list[CollectorError] = []
        state = self._boot_state(hostsrc.read_boot_id(o.proc_root))
        host = self._host(state, errs)
        era = ERAS.get(host.era)

        rows: list[SlabinfoRow] = []
        try:
            rows = slabinfo.read_slabinfo(o.proc_root)
        except CollectorError as err:
            errs.append(("slabinfo", err))
        if not state.name_to_dir.keys() >= {r.name for r in rows} or (
                not rows and not state.geometry):
            self._refresh_geometry(state, scratch)
            note("slub-sysfs", scratch)
        stats: dict[str, SlubStats] = {}
        if o.slub_stats or o.slub_objects:
            for d in state.geometry:
                stats[d] = slub.read_stats(o.sys_root, d, scratch, objects=o.slub_objects)
            note("slub-sysfs", scratch)
        caches = self._caches(rows, state, stats, host.page_size_bytes)

        memcg_children: list[MemcgChildCache] = []
        if era is None or era.memcg_sysfs_children:
            for d in state.geometry:
                memcg_children.extend(slub.read_memcg_children(
                    o.sys_root, d, scratch, objects=o.slub_objects))
            note("slub-memcg-sysfs", scratch)
        memcg_rows: list[MemcgSlabinfoRow] = []
        if era is None or era.memcg_slabinfo_debugfs:
            path = slub.memcg_slabinfo_path(o.sys_root)
            if os.path.exists(path):
                try:
                    memcg_rows = slub.read_memcg_slabinfo(o.sys_root)
                except CollectorError as err:
                    errs.append(("memcg_slabinfo", err))

        memcg, proc_rows, dirs, consistent = self._cgroups(state, errs)
        tracker = self._tracker(state)
        tracker.use_kmem_slabinfo(era is None or era.kmem_slabinfo_filled)
        series_due = self.series.due(now)
        full_due = self.full.due(now)
        # Tables are built from the compact copy, so a table tick is also a walk tick.
        walk_due = self.walk.due(now) or series_due or full_due
        if series_due or full_due:
            self.walk.next_at = now + self.walk.interval
        new, removed = tracker.tick(dirs, taken_at, walk_due, scratch)
        # num_cgroups only when it held still around the listing: else freed is unknown.
        row = dying.memory_row(proc_rows)
        churn = tracker.count_churn(dirs, row.num_cgroups if row and consistent else None,
                                    taken_at)
        if memcg is None:  # cgroup2: the root's cgroup.stat, read by the walk if it ran
            memcg = dying.count_v2(tracker.root_cgroup_stat("unified", taken_at, scratch),
                                   len(dirs["unified"].paths))
        del dirs  # 10,000 paths: free before the tables are built
        series = tracker.series_table() if series_due else None
        full = tracker.full_table() if full_due else None
        kmem_rows = tracker.kmem_slabinfo_rows(scratch) if series_due else []
        note("cgroup", scratch)
        meminfo: dict[str, int] = {}
        vmstat: dict[str, int] = {}
        # A bad line is an error of its own; the file's good lines are kept.
        lines: list[ParseError] = []
        try:
            meminfo = procfs.read_meminfo(o.proc_root, lines)
        except CollectorError as err:
            errs.append(("meminfo", err))
        errs.extend(("meminfo", e) for e in _bounded(lines))
        lines = []
        try:
            vmstat = procfs.read_vmstat(o.proc_root, lines)
        except CollectorError as err:
            errs.append(("vmstat", err))
        errs.extend(("vmstat", e) for e in _bounded(lines))

        return Snapshot(
            taken_at=taken_at,
            duration_seconds=time.perf_counter() - start,
            host=host,
            memcg=memcg,
            proc_cgroups=tuple(proc_rows),
            meminfo=meminfo,
            vmstat=vmstat,
            caches=tuple(caches),
            new_cgroups=tuple(new),
            series=series,
            full=full,
            kmem_slabinfo=tuple(kmem_rows),
            memcg_caches=tuple(memcg_children),
            memcg_slabinfo=tuple(memcg_rows),
            removed=tuple(removed),
            # A file read twice in a tick (first sight, then the walk) says the same once.
            errors=tuple(dict.fromkeys(
                SourceError(s, hostsrc.wire_text(e.path, 4 * 4096),
                            hostsrc.wire_text(e.message, 65_536)) for s, e in errs)),
            host_full=self.host_full.due(now),
            churn=tuple(churn),
        )

    def _host(self, state: _BootState, errs: list[tuple[str, CollectorError]]) -> HostIdentity:
        o = self.options
        release = state.release
        if o.era:
            era, era_source = o.era, "settings"
        elif release is None:
            era, era_source = DEFAULT_ERA, "default"
        else:
            try:
                era, era_source = era_for_release(release), "release"
            except UnknownRelease as err:
                errs.append(("host", CollectorError("osrelease", str(err))))
                era, era_source = DEFAULT_ERA, "default"
        if release is None:
            errs.append(("host", CollectorError(os.path.join(o.proc_root, "sys/kernel/osrelease"),
                                                "kernel release unreadable; era assumed "
                                                f"{era} (set SLABSCOPE_ERA)")))
            release = "unknown"
        hostname = o.hostname or hostsrc.read_hostname(o.proc_root) or "unknown"
        return HostIdentity(
            hostname=hostname,
            machine_id=state.machine_id,
            boot_id=state.boot_id,
            kernel_release=release,
            era=era,
            era_source=era_source,
            possible_cpus=state.cpus or os.cpu_count() or 1,
            numa_nodes=state.nodes or 1,
            page_size_bytes=o.page_size_bytes or os.sysconf("SC_PAGESIZE"),
            cgroup_layout=state.layout,
        )

    @staticmethod
    def _caches(rows: list[SlabinfoRow], state: _BootState, stats: dict[str, SlubStats],
                page_size: int) -> list[Cache]:
        out: list[Cache] = []
        append = out.append
        static = state.static
        for r in rows:
            st = static.get(r.name)
            if st is None:  # no SLUB sysfs (SLAB allocator, or not mounted): order from pages
                aliases: tuple[str, ...] = ()
                order = r.pagesperslab.bit_length() - 1 if r.pagesperslab > 0 else None
                slab_size = reclaim = None
            else:
                aliases, order, slab_size, reclaim = st
                if order is None and r.pagesperslab > 0:
                    order = r.pagesperslab.bit_length() - 1
            partial = cpu_slabs = None
            if stats:
                s = stats.get(state.name_to_dir.get(r.name, ""))
                if s is not None:
                    partial = s.partial.total if s.partial else None
                    cpu_slabs = s.cpu_slabs.total if s.cpu_slabs else None
            append(Cache(r.name, aliases, r.objsize_bytes, r.objperslab, r.pagesperslab, order,
                         r.active_objs, r.num_objs, r.num_slabs,
                         r.num_slabs * r.pagesperslab * page_size, slab_size, reclaim, partial,
                         cpu_slabs))
        return out

    def _cgroups(
        self, state: _BootState, errs: list[tuple[str, CollectorError]]
    ) -> tuple[MemcgCount | None, list[ProcCgroupsRow], dict[str, Listing], bool]:
        """The memcg count (None: cgroup2's, from the root's cgroup.stat after the tick),
        /proc/cgroups, a listing, and whether the memory count held still around it."""
        o = self.options
        tracker = self._tracker(state)
        by_kind = {h.kind: h for h in state.hierarchies}
        v1 = by_kind.get("memory")
        v2 = by_kind.get("unified")
        proc_rows: list[ProcCgroupsRow] = []
        dirs: dict[str, Listing] = {}
        consistent = False
        # /proc/cgroups, the listing, /proc/cgroups again: other processes create and remove
        # cgroups all the time, so accept the listing only when the count did not move.
        for _ in range(CONSISTENT_TRIES):
            try:
                before = procfs.read_proc_cgroups(o.proc_root)
            except CollectorError as err:
                errs.append(("proc-cgroups", err))
                before = []
            dirs = tracker.list_all()
            try:
                proc_rows = procfs.read_proc_cgroups(o.proc_root)
            except CollectorError:
                proc_rows = before
            a, b = dying.memory_row(before), dying.memory_row(proc_rows)
            if (a.num_cgroups if a else None) == (b.num_cgroups if b else None):
                consistent = True
                break
        row = dying.memory_row(proc_rows)
        memcg: MemcgCount | None
        if v1 is not None and row is not None:
            memcg = dying.count_v1(row.num_cgroups, len(dirs["memory"].paths))
        elif v2 is not None and v2.memory_controller:
            # The root's cgroup.stat every tick (the dying count is a host-level figure), once:
            # on a walk tick the walk reads it.
            memcg = None
        elif row is None:
            memcg = dying.unavailable("no memory row in /proc/cgroups (memory controller "
                                      "disabled or not built)")
        else:
            memcg = dying.unavailable("no v1 memory hierarchy and no cgroup2 with the memory "
                                      "controller is mounted")
        return memcg, proc_rows, dirs, consistent


LINE_ERRORS_MAX = 5  # a file's bad lines reported one by one, then counted


def _bounded(lines: list[ParseError]) -> list[CollectorError]:
    """A file's bad-line errors, at most LINE_ERRORS_MAX and a count of the rest (a garbage
    file of 100,000 lines must not make a snapshot of 100,000 errors)."""
    if len(lines) <= LINE_ERRORS_MAX:
        return list(lines)
    rest = len(lines) - LINE_ERRORS_MAX
    return [*lines[:LINE_ERRORS_MAX],
            CollectorError(lines[0].path, f"and {rest} more bad line{'s' if rest > 1 else ''}")]
