"""/proc/slabinfo parsing against third-party fixtures, the statistics variant, and bad text."""

from __future__ import annotations

import json

import pytest

from app.collector.errors import ParseError
from app.collector.sources.slabinfo import parse_slabinfo, read_slabinfo
from tests.conftest import ERAS, HOST, THIRD_PARTY


def test_prometheus_procfs_300_caches_and_first_row() -> None:
    exp = json.loads((THIRD_PARTY / "prometheus-procfs/expected.json").read_text())
    e = exp["fixtures/proc/slabinfo"]["upstream_asserted"]
    rows = read_slabinfo(str(THIRD_PARTY / "prometheus-procfs/fixtures/proc"))
    assert len(rows) == e["slab_count"] == 300
    f, r = e["first_slab"], rows[0]
    assert (r.name, r.active_objs, r.num_objs, r.objsize_bytes, r.objperslab, r.pagesperslab) \
        == (f["name"], f["active_objs"], f["num_objs"], f["objsize"], f["objperslab"],
            f["pagesperslab"])
    assert (r.limit, r.batchcount, r.sharedfactor) == (f["limit"], f["batchcount"],
                                                       f["sharedfactor"])
    assert (r.active_slabs, r.num_slabs, r.sharedavail) == (f["active_slabs"], f["num_slabs"],
                                                            f["sharedavail"])
    assert r.statistics is None


def test_node_exporter_four_caches() -> None:
    exp = json.loads((THIRD_PARTY / "prometheus-node_exporter/expected.json").read_text())
    e = exp["fixtures/proc/slabinfo"]
    rows = {r.name: r for r in read_slabinfo(
        str(THIRD_PARTY / "prometheus-node_exporter/fixtures/proc"))}
    assert len(rows) == e["cache_count"] == 4
    for name, v in e["upstream_expected (node_slabinfo_*)"].items():
        r = rows[name]
        assert (r.active_objs, r.num_objs, r.objsize_bytes, r.objperslab, r.pagesperslab) == (
            v["active_objects"], v["objects"], v["object_size_bytes"], v["objects_per_slab"],
            v["pages_per_slab"])


@pytest.mark.parametrize("n", range(1, 8))
def test_pcp_meminfo_roots_every_cache(n: int) -> None:
    exp = json.loads((THIRD_PARTY / "pcp/meminfo/expected-slabinfo-meminfo.json").read_text())
    e = exp[f"meminfo-root-00{n}.tgz"]
    rows = read_slabinfo(str(THIRD_PARTY / "pcp/meminfo" / e["unpacked_dir"] / "proc"))
    up = e["upstream_expected"]
    assert len(rows) == up["mem.slabinfo instance count"]
    by_name = {r.name.replace(" ", "_"): r for r in rows}
    assert len(by_name) == len(rows)  # no duplicate names in these captures
    for name, v in up["mem.slabinfo per cache"].items():
        r = by_name[name]
        assert r.active_objs == v["objects.active"]
        assert r.num_objs == v["objects.total"]
        assert r.objsize_bytes == v["objects.size"]
        assert r.active_slabs == v["slabs.active"]
        assert r.num_slabs == v["slabs.total"]
        assert r.objperslab == v["slabs.objects_per_slab"]
        assert r.pagesperslab == v["slabs.pages_per_slab"]
        # PCP's total_size: pages_per_slab * active_objs * 4096 / objects_per_slab.
        assert r.pagesperslab * r.active_objs * 4096 // r.objperslab == v["slabs.total_size"]
    derived = e["derived_from_files"]
    key = "sum over caches of num_slabs*pagesperslab*4096 (bytes)"
    assert sum(r.num_slabs * r.pagesperslab * 4096 for r in rows) == derived[key]


def test_this_host_capture_dentry_row() -> None:
    rows = read_slabinfo(str(HOST / "proc"))
    text = (HOST / "proc/slabinfo").read_text().splitlines()
    assert len(rows) == len(text) - 2 == 235
    dentry = next(line.split() for line in text if line.startswith("dentry "))
    r = next(r for r in rows if r.name == "dentry")
    assert [r.active_objs, r.num_objs, r.objsize_bytes, r.objperslab, r.pagesperslab] == [
        int(x) for x in dentry[1:6]]
    assert r.objsize_bytes == 192 and r.objperslab == 21 and r.pagesperslab == 1


def test_statistics_variant_and_repeated_names_kept() -> None:
    rows = read_slabinfo(str(ERAS / "slab-statistics-4.14/proc"))
    assert [r.name for r in rows] == ["dentry", "kmalloc-64", "kmalloc-64"]
    d = rows[0]
    assert (d.limit, d.batchcount, d.sharedfactor) == (120, 60, 8)
    assert d.statistics == {"globalstat": (2310, 840, 40, 2, 0, 1, 0, 0, 0),
                            "cpustat": (9000, 310, 8800, 120)}
    assert (rows[1].num_objs, rows[2].num_objs) == (128, 64)


HEAD = "slabinfo - version: 2.1\n# name <active_objs> ...\n"


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("", 1, "empty file"),
    ("slabinfo - version: 1.1\n", 1, "unsupported slabinfo version"),
    ("garbage\n", 1, "expected 'slabinfo - version"),
    (HEAD + "dentry 1 2 3 4 : tunables 0 0 0 : slabdata 1 1 0\n", 3, "name and 5 numbers"),
    (HEAD + "dentry 1 2 x 4 5 : tunables 0 0 0 : slabdata 1 1 0\n", 3, "expected an integer"),
    (HEAD + "ok 1 2 3 4 5 : tunables 0 0 0 : slabdata 1 1 0\n"
            "dentry 1 2 3 4 5 : tunables 0 0 : slabdata 1 1 0\n", 4, "tunables"),
    (HEAD + "dentry 1 2 3 4 5 : tunables 0 0 0\n", 3, "slabdata"),
])
def test_malformed_names_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_slabinfo("/proc/slabinfo", text)
    assert info.value.path == "/proc/slabinfo"
    assert info.value.line == line
    assert fragment in str(info.value)
