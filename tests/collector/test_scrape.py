"""The scrape as a whole: bad files become errors, removals are recorded, JSON round-trips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from app.collector.scrape import Collector, CollectorOptions
from app.domain.snapshot_json import encode_snapshot, snapshot_to_dict
from app.fleet.wire import snapshot_from_dict
from tests.conftest import ERAS


def _copy(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name
    shutil.copytree(ERAS / name, dst, symlinks=True)
    return dst


def test_malformed_files_give_errors_and_the_rest_is_kept(tmp_path: Path) -> None:
    root = _copy(tmp_path, "pre-5.3-v1-memcg-sysfs")
    (root / "proc/slabinfo").write_text("slabinfo - version: 2.1\n# h\ndentry 1 2 3\n")
    (root / "sys/fs/cgroup/memory/user.slice/memory.stat").write_text("cache twelve\n")
    (root / "proc/meminfo").write_bytes(b"\xff\xfe garbage")
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys")))
    s = c.collect()
    by = {e.source: e for e in s.errors}
    assert by["slabinfo"].message == "line 3: expected a name and 5 numbers, got 'dentry 1 2 3'"
    assert by["slabinfo"].path.endswith("proc/slabinfo")
    assert by["cgroup"].path.endswith("user.slice/memory.stat")
    assert "line 1" in by["cgroup"].message
    assert by["meminfo"].path.endswith("proc/meminfo")
    assert s.caches == () and s.meminfo == {}
    # Everything else still arrived.
    assert (s.memcg.total, s.memcg.dying) == (57, 53)
    # user.slice is kept (listed, its read failed): absent from the full table, in the series.
    assert s.full is not None and s.series is not None
    assert {p for h, p in zip(s.full.hierarchies, s.full.paths, strict=True)
            if h == "memory"} == {"/", "/system.slice", "/system.slice/cron.service"}
    assert "/user.slice" in s.series.paths
    assert {x.path for x in c.live_cgroups() if x.hierarchy == "memory"} == {
        "/", "/system.slice", "/system.slice/cron.service"}
    assert len(s.memcg_caches) == 5


def test_removed_cgroup_recorded_with_last_memory_stat(tmp_path: Path) -> None:
    root = _copy(tmp_path, "pre-5.3-v1-memcg-sysfs")
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys")))
    first = c.collect()
    assert first.removed == ()
    shutil.rmtree(root / "sys/fs/cgroup/memory/system.slice/cron.service")
    second = c.collect()
    (r,) = second.removed
    assert (r.hierarchy, r.path) == ("memory", "/system.slice/cron.service")
    assert r.last_memory_stat["cache"] == 2_048_000
    assert r.last_memory_usage_bytes == 2_900_000
    assert r.last_seen_at == first.taken_at and r.removed_by == second.taken_at
    assert r.stat_read_at == first.taken_at
    assert c.collect().removed == ()  # reported once


def test_new_boot_is_not_a_removal(tmp_path: Path) -> None:
    root = _copy(tmp_path, "pre-5.3-v1-memcg-sysfs")
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys")))
    c.collect()
    shutil.rmtree(root / "sys/fs/cgroup/memory/user.slice")
    (root / "proc/sys/kernel/random/boot_id").write_text("another-boot\n")
    assert c.collect().removed == ()


def test_snapshot_json_round_trip(tmp_path: Path) -> None:
    for tree in sorted(ERAS.iterdir()):
        root = _copy(tmp_path, tree.name)
        c = Collector(CollectorOptions(proc_root=str(root / "proc"),
                                       sys_root=str(root / "sys")))
        first = c.collect()  # with series and full tables
        mem = root / "sys/fs/cgroup/memory"
        moved = (mem / "system.slice").is_dir()
        if moved:  # a new cgroup and a removed one in the second tick
            shutil.copytree(mem / "system.slice", mem / "new.slice")
            shutil.rmtree(mem / "system.slice")
        for s in (first, c.collect()):
            d = json.loads(json.dumps(snapshot_to_dict(s)))
            assert d["schema"] == "slabscope.snapshot/2"
            assert snapshot_from_dict(d) == s
            assert json.loads("".join(encode_snapshot(s))) == d  # the chunked push encoding
            assert d["memcg"]["dying"] == s.memcg.dying
        if moved:
            assert [x.path for x in s.new_cgroups if x.hierarchy == "memory"] == [
                "/new.slice", "/new.slice/cron.service"]
            assert d["removed"][0]["stat_read_at"] == first.taken_at.isoformat()
