"""Cgroup trees: PCP's v1 captures, opencontainers' v1/v2 files, hostile names, vanishing."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.collector.cgstate import HierarchyState
from app.collector.errors import CollectorError
from app.collector.scrape import Collector, CollectorOptions
from app.collector.sources import cgroups as cgsrc
from app.domain.samples import CgroupSample, Snapshot
from tests.collector.tables import check_tables
from tests.conftest import THIRD_PARTY

PCP = THIRD_PARTY / "pcp/cgroups"
AT = datetime(2026, 1, 1, tzinfo=UTC)
OCI = THIRD_PARTY / "opencontainers-cgroups"


def _collect(root: Path) -> tuple[Snapshot, list[CgroupSample]]:
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys")))
    s = c.collect()
    cgroups = c.live_cgroups()
    check_tables(s, cgroups)
    return s, cgroups


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pcp_memory_stat_per_instance(n: int) -> None:
    exp = json.loads((PCP / "expected-cgroups-root-001-003.json").read_text())[
        f"cgroups-root-00{n}.tgz"]
    snap, cgroups = _collect(PCP / exp["unpacked_dir"])
    v1 = {c.path: c for c in cgroups if c.hierarchy == "memory"}
    metrics = exp["upstream_expected"]["metrics"]
    checked = 0
    for metric, per_instance in metrics.items():
        if metric.startswith("cgroup.memory.stat."):
            key = metric[len("cgroup.memory.stat."):].replace(".", "_")
            for inst, value in per_instance.items():
                assert v1[inst].memory_stat[key] == value, (metric, inst)
                checked += 1
        elif metric == "cgroup.memory.usage":
            for inst, value in per_instance.items():
                assert v1[inst].memory_usage_bytes == value
                checked += 1
    assert checked > 20
    dirs = exp["derived_from_files"]["cgroup directories per hierarchy (incl. root)"]["memory"]
    num = exp["derived_from_files"]["proc/cgroups"]["memory"]["num_cgroups"]
    assert sorted(v1) == sorted(metrics["cgroup.memory.usage"])
    assert (snap.memcg.total, snap.memcg.visible, snap.memcg.dying) == (num, dirs, num - dirs)
    # memory.kmem.* where the kernel had it (002, 003), and no slab fields in v1 memory.stat
    kmem = exp["derived_from_files"]["memory.kmem.* files (v1 kernel-memory accounting)"]
    for path, value in kmem.items():
        if path.endswith("/memory.kmem.usage_in_bytes"):
            rel = path[len("sys/fs/cgroup/memory"):-len("/memory.kmem.usage_in_bytes")] or "/"
            assert v1[rel].kmem_usage_bytes == value
    assert all("slab" not in c.memory_stat for c in v1.values())
    # These captures hold only the cgroup files: everything else is reported missing, once.
    assert sorted(e.source for e in snap.errors) == ["host", "meminfo", "slabinfo",
                                                     "slub-sysfs", "vmstat"]


def test_pcp_001_mounts_outside_sys() -> None:
    hier, layout = cgsrc.discover(str(PCP / "cgroups-root-001/proc"),
                                  str(PCP / "cgroups-root-001/sys"))
    assert layout == "v1"
    (h,) = hier
    assert h.mount_point == "/cgroup/memory"
    assert Path(h.fs_path) == PCP / "cgroups-root-001/cgroup/memory"


def _oci_tree(tmp_path: Path, kind: str) -> Path:
    """Lay opencontainers' single-cgroup files out as a hierarchy with one child."""
    root = tmp_path / "sys/fs/cgroup"
    if kind == "v1":
        shutil.copytree(OCI / "fs-v1-memory", root / "memory")
        shutil.copytree(OCI / "fs-v1-memory", root / "memory/pod")
    else:
        root.mkdir(parents=True)
        (root / "cgroup.controllers").write_text("cpu memory\n")
        (root / "cgroup.stat").write_text("nr_descendants 1\nnr_dying_descendants 0\n")
        shutil.copytree(OCI / "fs2-pod-cgroup", root / "pod")
        (root / "pod/cgroup.stat").write_text("nr_descendants 0\nnr_dying_descendants 0\n")
    return tmp_path


def test_opencontainers_v2_pod_memory_stat_and_current(tmp_path: Path) -> None:
    exp = json.loads((OCI / "expected.json").read_text())["fs2-pod-cgroup"]
    root = _oci_tree(tmp_path, "v2")
    hier, layout = cgsrc.discover(str(root / "proc"), str(root / "sys"))
    assert layout == "v2" and hier[0].memory_controller
    errors: list[CollectorError] = []
    hs = HierarchyState(hier[0])
    e = hs.read("/pod", AT, errors)
    assert errors == [] and e is not None
    c = hs.memory_stat(e)
    parsed = exp["parsed_memory_stat (direct transcription of the input; the upstream test does "
                 "not assert each key)"]
    assert c == parsed  # all 40 keys, the last one without a newline
    assert e.usage == exp["upstream_asserted"]["MemoryStats.Usage.Usage (from memory.current)"]
    assert c["slab"] == c["slab_reclaimable"] + c["slab_unreclaimable"]
    # Without memory.current (memory not enabled in the parent) the read still succeeds.
    (root / "sys/fs/cgroup/pod/memory.current").unlink()
    (root / "sys/fs/cgroup/pod/memory.stat").write_text("anon 1\n")
    e2 = HierarchyState(hier[0]).read("/pod", AT, errors)
    assert errors == [] and e2 is not None and e2.usage is None
    assert e2.stat is not None and list(e2.stat) == [1]


def test_opencontainers_v1_memory_and_kmem(tmp_path: Path) -> None:
    exp = json.loads((OCI / "expected.json").read_text())["fs-v1-memory"][
        "upstream_asserted (TestMemoryStats)"]
    root = _oci_tree(tmp_path, "v1")
    _snap, cgroups = _collect(root)
    pod = next(c for c in cgroups if c.path == "/pod")
    assert pod.memory_stat == exp["Stats"]  # "cache 512\nrss 1024" without a newline
    assert pod.memory_usage_bytes == exp["Usage"]["Usage"]
    assert pod.kmem_usage_bytes == exp["KernelUsage (memory.kmem.*)"]["Usage"]


def test_hostile_names_are_kept_as_text(tmp_path: Path) -> None:
    root = _oci_tree(tmp_path, "v1")
    mem = root / "sys/fs/cgroup/memory"
    names = ["<img src=x onerror=alert(1)>", "a b\nc", "ünï", "x\\y"]
    for name in names:
        shutil.copytree(OCI / "fs-v1-memory", mem / name)
    raw = os.fsencode(str(mem)) + b"/bad\xff"
    shutil.copytree(OCI / "fs-v1-memory", raw.decode("utf-8", "surrogateescape"))
    _snap, cgroups = _collect(root)
    paths = {c.path for c in cgroups}
    for name in names:
        assert "/" + name in paths
    assert "/bad\\xff" in paths
    for p in paths:
        p.encode("utf-8")  # every path is text a page or JSON can hold: no lone surrogate


def test_cgroup_vanishing_mid_scrape_is_an_error_not_a_crash(tmp_path: Path) -> None:
    root = _oci_tree(tmp_path, "v1")
    hier, _ = cgsrc.discover(str(root / "proc"), str(root / "sys"))
    hs = HierarchyState(hier[0])
    errors: list[CollectorError] = []
    # A file missing from a directory that exists: an error naming it, the entry kept.
    (root / "sys/fs/cgroup/memory/pod/memory.stat").unlink()
    e = hs.read("/pod", AT, errors)
    assert e is not None and e.read_at is None and "/pod" in hs.entries
    (err,) = errors
    assert "removed mid-scrape" in err.message and err.path.endswith("/pod/memory.stat")
    # The directory gone: not an error, the cgroup is being removed.
    shutil.rmtree(root / "sys/fs/cgroup/memory/pod")
    errors.clear()
    assert hs.read("/pod", AT, errors) is None and errors == []
