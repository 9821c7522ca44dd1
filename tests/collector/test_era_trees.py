"""The collector pointed at each fixture tree reports exactly the values the tree encodes."""

from __future__ import annotations

from pathlib import Path

from app.collector.scrape import Collector, CollectorOptions
from app.domain.samples import CgroupSample, Snapshot
from tests.collector.tables import check_tables
from tests.conftest import ERAS, HOST


def collect(root: Path, **kw: object) -> tuple[Snapshot, list[CgroupSample]]:
    """The first tick and every cgroup it read (checked against its series and full tables)."""
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys"),
                                   page_size_bytes=4096, **kw))  # type: ignore[arg-type]
    s = c.collect()
    cgroups = c.live_cgroups()
    check_tables(s, cgroups)
    return s, cgroups


def test_pre53_hybrid_with_per_memcg_caches() -> None:
    s, cgroups = collect(ERAS / "pre-5.3-v1-memcg-sysfs", slub_objects=True)
    h = s.host
    assert (h.hostname, h.kernel_release, h.era, h.cgroup_layout, h.possible_cpus) == (
        "web-frontend-419", "4.19.0-6-amd64", "pre-5.3", "hybrid", 4)
    assert (s.memcg.total, s.memcg.visible, s.memcg.dying) == (57, 4, 53)
    caches = {c.name: c for c in s.caches}
    assert list(caches) == ["dentry", "kmalloc-64", "inode_cache", "ext4_inode_cache"]
    k = caches["kmalloc-64"]
    assert k.aliases == ("eventpoll_pwq", "fasync_cache")
    assert (k.num_objs, k.active_objs, k.num_slabs, k.bytes, k.order) == (55296, 51200, 864,
                                                                           864 * 4096, 0)
    assert caches["ext4_inode_cache"].bytes == 690 * 8 * 4096
    assert caches["inode_cache"].slab_size_bytes == 608
    kids = sorted((m.root_cache, m.memcg_serial, m.cgroup_name, m.slabs, m.objects)
                  for m in s.memcg_caches)
    assert kids == [("dentry", 12, "cron.service", 40, 812),
                    ("dentry", 41, "run-r2c4.scope", 3, 1),
                    ("dentry", 57, "<img src=x onerror=alert(1)>", 1, 1),
                    ("inode_cache", 41, "run-r2c4.scope", 1, 2),
                    ("kmalloc-64", 12, "cron.service", 2, 100)]
    v1 = {c.path: c for c in cgroups if c.hierarchy == "memory"}
    cron = v1["/system.slice/cron.service"]
    assert cron.kmem_usage_bytes == 172_032
    assert cron.memory_stat["cache"] == 2_048_000 and cron.memory_usage_bytes == 2_900_000
    assert cron.kmem_slabinfo is not None
    assert [(r.name, r.num_objs, r.num_slabs) for r in cron.kmem_slabinfo] == [
        ("dentry", 840, 40), ("kmalloc-64", 128, 2)]
    assert v1["/"].kmem_slabinfo == ()
    v2 = {c.path: c for c in cgroups if c.hierarchy == "unified"}
    assert v2["/system.slice"].nr_dying_descendants == 1
    assert s.meminfo["Slab"] == 412300 * 1024 and s.meminfo["Percpu"] == 23040 * 1024
    assert s.errors == ()


def test_53_memcg_slabinfo_dead_and_deact() -> None:
    s, cgroups = collect(ERAS / "5.3-v1-memcg-slabinfo")
    assert (s.host.era, s.host.cgroup_layout, s.host.possible_cpus) == ("5.3", "v1", 8)
    assert (s.memcg.total, s.memcg.visible, s.memcg.dying) == (1203, 3, 1200)
    dead = [(r.name, r.css_id) for r in s.memcg_slabinfo if r.dead]
    deact = [(r.name, r.css_id) for r in s.memcg_slabinfo if r.deact]
    assert dead == [("dentry", 913)] and deact == [("dentry", 2)]
    assert len(s.memcg_slabinfo) == 6
    ctr = next(c for c in cgroups if c.path == "/docker/4f1d")
    assert ctr.kmem_slabinfo is not None and ctr.kmem_slabinfo[0].num_objs == 16800
    assert s.errors == ()


def test_v2_515_dying_per_subtree_and_unknown_keys() -> None:
    s, cgroups = collect(ERAS / "v2-5.15-dying")
    assert (s.host.era, s.host.cgroup_layout, s.host.possible_cpus) == ("objcg-kmem", "v2", 16)
    assert (s.memcg.total, s.memcg.visible, s.memcg.dying) == (43, 6, 37)
    assert "nr_dying_descendants" in s.memcg.method
    by = {c.path: c for c in cgroups}
    assert {p: c.nr_dying_descendants for p, c in by.items()} == {
        "/": 37, "/kubepods.slice": 30, "/kubepods.slice/pod-a": 12,
        "/kubepods.slice/pod-a/ctr-1": 0, "/system.slice": 7, "/system.slice/sshd.service": 0}
    assert by["/kubepods.slice"].memory_usage_bytes == 50_000_000
    assert by["/"].memory_usage_bytes is None  # the root has no memory.current
    assert by["/system.slice"].memory_stat["some_future_key"] == 7  # unknown keys are kept
    assert by["/system.slice"].memory_stat["kernel_stack"] == 16384
    # The tree has no SLUB sysfs: reported once, the caches still come from slabinfo.
    assert [e.source for e in s.errors] == ["slub-sysfs"]
    assert [c.name for c in s.caches] == ["kmalloc-cg-64", "dentry"]
    assert s.caches[1].order == 0 and s.caches[1].aliases == ()


def test_v2_612_prefers_memory_subsys_counts() -> None:
    s, cgroups = collect(ERAS / "v2-6.12-subsys")
    assert s.host.possible_cpus == 64
    # 118 dying memcgs, though 120 cgroups are dying (two never had a memory css left).
    assert (s.memcg.total, s.memcg.visible, s.memcg.dying) == (123, 5, 118)
    assert "6.12+" in s.memcg.method
    root = next(c for c in cgroups if c.path == "/")
    assert root.cgroup_stat is not None
    assert root.cgroup_stat["nr_dying_subsys_memory"] == 118
    assert root.nr_dying_descendants == 120
    assert next(r for r in s.proc_cgroups if r.subsys_name == "memory").num_cgroups == 125


def test_slab_allocator_statistics_host() -> None:
    s, _cgroups = collect(ERAS / "slab-statistics-4.14")
    assert s.host.era == "pre-5.3" and s.host.cgroup_layout == "none"
    assert [c.name for c in s.caches] == ["dentry", "kmalloc-64", "kmalloc-64"]
    assert s.memcg.dying is None and s.memcg.method.startswith("unavailable")


def test_this_host_capture() -> None:
    s, _cgroups = collect(HOST)
    h = s.host
    assert (h.hostname, h.kernel_release, h.era, h.cgroup_layout) == (
        "vm", "6.18.44-fc-v657", "objcg-kmem", "hybrid")
    assert (h.possible_cpus, h.numa_nodes, h.machine_id) == (
        2, 1, (HOST / "etc/machine-id").read_text().strip())
    num = int(next(line.split()[2] for line in (HOST / "proc/cgroups").read_text().splitlines()
                   if line.startswith("memory")))
    dirs = sum(1 for _ in (HOST / "sys/fs/cgroup/memory").rglob("*") if _.is_dir()) + 1
    assert (s.memcg.total, s.memcg.visible, s.memcg.dying) == (num, dirs, num - dirs)
    assert (num, dirs) == (32, 6)
    assert len(s.caches) == 235
    assert sum(len(c.aliases) + 1 for c in s.caches) <= 429
    dentry = next(c for c in s.caches if c.name == "dentry")
    assert dentry.reclaim_account is True and dentry.order == 0
    assert dentry.bytes == dentry.num_slabs * 4096
    assert s.errors == ()
