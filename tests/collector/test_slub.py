"""SLUB sysfs: count files, realpath dedupe on this host's capture, per-memcg children."""

from __future__ import annotations

import os

import pytest

from app.collector.errors import CollectorError, ParseError
from app.collector.sources import slub
from tests.conftest import ERAS, HOST


def test_node_count_with_and_without_nodes() -> None:
    c = slub.parse_node_count("slabs", "1234 N0=600 N1=634\n")
    assert (c.total, c.per_node) == (1234, {0: 600, 1: 634})
    assert slub.parse_node_count("slabs", "7\n").per_node == {}
    with pytest.raises(ParseError):
        slub.parse_node_count("slabs", "12 C0=3(1)\n")
    with pytest.raises(ParseError):
        slub.parse_node_count("slabs", "\n")


def test_capture_dedupes_symlinks_by_realpath() -> None:
    entries = os.listdir(HOST / "sys/kernel/slab")
    real = [e for e in entries if not os.path.islink(HOST / "sys/kernel/slab" / e)]
    caches = slub.scan_caches(str(HOST / "sys"))
    assert len(caches) == len(real)
    # Every entry name is reachable from exactly one directory.
    names = [n for v in caches.values() for n in v]
    assert sorted(names) == sorted(e for e in entries if not e.startswith(":"))
    target = os.readlink(HOST / "sys/kernel/slab/AF_VSOCK")
    assert "AF_VSOCK" in caches[target]


def test_capture_geometry_and_stats_of_dentry() -> None:
    errors: list[CollectorError] = []
    g = slub.read_geometry(str(HOST / "sys"), "dentry", ("dentry",), errors)
    base = HOST / "sys/kernel/slab/dentry"
    assert g.order == int((base / "order").read_text())
    assert (g.object_size_bytes, g.objs_per_slab) == (192, 21)
    assert g.reclaim_account is True
    s = slub.read_stats(str(HOST / "sys"), "dentry", errors, objects=True)
    assert s.slabs is not None and s.slabs.total == int((base / "slabs").read_text().split()[0])
    assert s.slabs.per_node == {0: s.slabs.total}
    assert s.objects is not None and s.total_objects is not None
    assert s.objects.total <= s.total_objects.total
    assert errors == []


def test_pre53_memcg_children_including_hostile_name() -> None:
    errors: list[CollectorError] = []
    kids = slub.read_memcg_children(str(ERAS / "pre-5.3-v1-memcg-sysfs/sys"), "dentry", errors,
                                    objects=True)
    assert errors == []
    got = {(k.memcg_serial, k.cgroup_name): (k.slabs, k.total_objects, k.objects) for k in kids}
    assert got == {(12, "cron.service"): (40, 840, 812), (41, "run-r2c4.scope"): (3, 63, 1),
                   (57, "<img src=x onerror=alert(1)>"): (1, 21, 1)}
    assert {k.root_cache for k in kids} == {"dentry"}
    merged = slub.read_memcg_children(str(ERAS / "pre-5.3-v1-memcg-sysfs/sys"), ":0000064",
                                      errors)
    assert [(k.root_cache, k.memcg_serial, k.slabs) for k in merged] == [("kmalloc-64", 12, 2)]


def test_child_name_parsing() -> None:
    assert slub.parse_child_name("dentry(1234:foo.service)") == ("dentry", 1234, "foo.service")
    assert slub.parse_child_name("kmalloc-64(7:a(b):c)") == ("kmalloc-64", 7, "a(b):c")
    assert slub.parse_child_name("dentry") is None


def test_memcg_slabinfo_flags() -> None:
    rows = slub.read_memcg_slabinfo(str(ERAS / "5.3-v1-memcg-slabinfo/sys"))
    got = [(r.name, r.css_id, r.dead, r.deact, r.active_objs, r.num_slabs) for r in rows]
    assert got == [
        ("dentry", None, False, False, 380000, 18953),
        ("dentry", 7, False, False, 15000, 800),
        ("dentry", 913, True, False, 12, 1),
        ("dentry", 2, False, True, 4988, 247),
        ("kmalloc-256", None, False, False, 7900, 504),
        ("kmalloc-256", 7, False, False, 100, 8),
    ]
    with pytest.raises(ParseError) as info:
        slub.parse_memcg_slabinfo("m", "dentry 7:zombie 1 2 3 4\n")
    assert "unknown css flag" in str(info.value)
