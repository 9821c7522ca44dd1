"""/proc/cgroups, /proc/meminfo and per-node meminfo against third-party expected values."""

from __future__ import annotations

import json

import pytest

from app.collector.errors import ParseError
from app.collector.sources.procfs import (
    parse_meminfo,
    parse_proc_cgroups,
    read_meminfo,
    read_node_meminfo,
    read_proc_cgroups,
    read_vmstat,
)
from tests.conftest import HOST, THIRD_PARTY

NE = THIRD_PARTY / "prometheus-node_exporter"


def test_node_exporter_cgroups_no_trailing_newline() -> None:
    exp = json.loads((NE / "expected.json").read_text())["fixtures/proc/cgroups"]
    assert not (NE / "fixtures/proc/cgroups").read_bytes().endswith(b"\n")
    rows = {r.subsys_name: r for r in read_proc_cgroups(str(NE / "fixtures/proc"))}
    assert len(rows) == exp["subsystem_count"] == 12
    for name, v in exp["upstream_expected (node_cgroups_cgroups / node_cgroups_enabled)"].items():
        r = rows[name]
        assert (r.hierarchy, r.num_cgroups, r.enabled) == (v["hierarchy"], v["num_cgroups"],
                                                           bool(v["enabled"]))


def test_procfs_cgroups_line_cases() -> None:
    exp = json.loads((THIRD_PARTY / "prometheus-procfs/expected.json").read_text())
    cases = exp["proc/cgroups line cases (inline in proc_cgroups_test.go; procfs ships no "
                "proc/cgroups fixture)"]
    for case in cases:
        text = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n" + case["input_line"] + "\n"
        if case["expect_error"]:
            with pytest.raises(ParseError) as info:
                parse_proc_cgroups("/proc/cgroups", text)
            assert info.value.line == 2
        else:
            (r,) = parse_proc_cgroups("/proc/cgroups", text)
            e = case["expect"]
            assert (r.subsys_name, r.hierarchy, r.num_cgroups, r.enabled) == (
                e["subsys_name"], e["hierarchy"], e["num_cgroups"], bool(e["enabled"]))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pcp_cgroups_proc_cgroups(n: int) -> None:
    exp = json.loads((THIRD_PARTY / "pcp/cgroups/expected-cgroups-root-001-003.json")
                     .read_text())[f"cgroups-root-00{n}.tgz"]
    rows = {r.subsys_name: r for r in read_proc_cgroups(
        str(THIRD_PARTY / "pcp/cgroups" / exp["unpacked_dir"] / "proc"))}
    table = exp["derived_from_files"]["proc/cgroups"]
    assert set(rows) == set(table)
    for name, v in table.items():
        assert (rows[name].hierarchy, rows[name].num_cgroups, rows[name].enabled) == (
            v["hierarchy"], v["num_cgroups"], bool(v["enabled"]))


def test_procfs_meminfo_every_field_in_bytes() -> None:
    exp = json.loads((THIRD_PARTY / "prometheus-procfs/expected.json").read_text())
    e = exp["fixtures/proc/meminfo"]
    got = read_meminfo(str(THIRD_PARTY / "prometheus-procfs/fixtures/proc"))
    for key, value in e["upstream_asserted_bytes"].items():
        assert got[key] == value, key
    for key in e["fields_without_kB_unit_have_no_bytes_value"]:
        # Unitless fields stay plain counts, exactly as in the file.
        assert got[key] == e["upstream_asserted_values_as_in_file"][key]
    assert got["Slab"] == 1850638336


def test_node_exporter_meminfo_and_numa() -> None:
    exp = json.loads((NE / "expected.json").read_text())
    got = read_meminfo(str(NE / "fixtures/proc"))
    b = exp["fixtures/proc/meminfo"]["upstream_expected_bytes"]
    assert got["Slab"] == b["node_memory_Slab_bytes"] == 101306368
    assert got["SReclaimable"] == b["node_memory_SReclaimable_bytes"]
    assert got["SUnreclaim"] == b["node_memory_SUnreclaim_bytes"]
    assert got["MemTotal"] == b["MemTotal_bytes (meminfo_linux_test.go)"]
    assert got["DirectMap2M"] == b["DirectMap2M_bytes (meminfo_linux_test.go)"]
    nodes = read_node_meminfo(str(NE / "fixtures/sys"))
    numa = exp["fixtures/sys/devices/system/node/nodeN/meminfo"]
    assert sorted(nodes) == [0, 1, 2]
    for node, vals in numa["upstream_expected_bytes (node_memory_numa_*)"].items():
        for key, value in vals.items():
            assert nodes[int(node)][key] == value
    t = numa["meminfo_numa_linux_test.go"]
    assert nodes[0]["Active(anon)"] == t["node0 line index 5 Active(anon) bytes"]
    assert nodes[0]["AnonHugePages"] == t["node0 line index 25 AnonHugePages bytes"]
    assert nodes[1]["Inactive(anon)"] == t["node1 line index 6 Inactive(anon) bytes"]
    assert nodes[1]["FilePages"] == t["node1 line index 13 FilePages bytes"]


@pytest.mark.parametrize("n", range(1, 8))
def test_pcp_meminfo_slab_figures(n: int) -> None:
    exp = json.loads((THIRD_PARTY / "pcp/meminfo/expected-slabinfo-meminfo.json").read_text())
    e = exp[f"meminfo-root-00{n}.tgz"]
    got = read_meminfo(str(THIRD_PARTY / "pcp/meminfo" / e["unpacked_dir"] / "proc"))
    up = e["upstream_expected"]
    assert got["Slab"] == up["mem.util.slab"] * 1024
    assert got["SReclaimable"] == up["mem.util.slabReclaimable"] * 1024
    assert got["SUnreclaim"] == up["mem.util.slabUnreclaimable"] * 1024


def test_this_host_meminfo_and_vmstat() -> None:
    mi = read_meminfo(str(HOST / "proc"))
    line = next(x for x in (HOST / "proc/meminfo").read_text().splitlines()
                if x.startswith("Slab:"))
    assert mi["Slab"] == int(line.split()[1]) * 1024
    assert mi["Slab"] == mi["SReclaimable"] + mi["SUnreclaim"]
    vm = read_vmstat(str(HOST / "proc"))
    assert "nr_slab_reclaimable" in vm and "pgscan_kswapd" in vm


@pytest.mark.parametrize("text", ["MemTotal 12 kB\n", "MemTotal:\n", "Slab: 12 MB\n",
                                  "Slab: -1 kB\n"])
def test_meminfo_malformed(text: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_meminfo("/proc/meminfo", "MemFree: 1 kB\n" + text)
    assert info.value.line == 2
