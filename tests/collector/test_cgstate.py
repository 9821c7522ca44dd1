"""The compact copy's parser, and the wire format's tables (schema 2, and schema 1 read)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from app.collector.cgstate import Schemas, parse_keyed
from app.collector.errors import ParseError
from app.collector.scrape import Collector, CollectorOptions
from app.domain.snapshot_json import _cgroup, snapshot_to_dict
from app.fleet.wire import snapshot_from_dict
from tests.collector.tables import check_tables
from tests.conftest import ERAS, HOST


def test_fast_path_reuses_the_schema_and_values_are_exact() -> None:
    schemas = Schemas()
    text = (HOST / "sys/fs/cgroup/memory/memory.stat").read_bytes()
    sid, vals, odd = parse_keyed("m", text, schemas, -1)
    want = {k: int(v) for k, v in (line.split() for line in text.decode().splitlines())}
    assert dict(zip(schemas.names[sid], vals, strict=True)) == want and odd is None
    again = parse_keyed("m", text, schemas, sid)
    assert again[0] == sid and again[1] == vals and len(schemas.keys) == 1


def test_out_of_range_values_take_the_careful_path() -> None:
    schemas = Schemas()
    sid, _, _ = parse_keyed("m", b"a 1\nb 2\n", schemas, -1)
    sid2, vals, odd = parse_keyed("m", b"a -5\nb -9223372036854775808\n", schemas, sid)
    assert sid2 == sid and list(vals) == [0, 0]
    assert odd == {"a": -5, "b": -(1 << 63)}
    # Past s64 and u64 both (no kernel prints it): an error naming the line.
    with pytest.raises(ParseError, match="line 2: b 18446744073709551616 is outside the "
                                         "64-bit range: left out"):
        parse_keyed("m", b"a 1\nb 18446744073709551616\n", schemas, sid)
    _, vals, odd = parse_keyed("m", b"a 18446744073709551615\nb 9223372036854775813\n",
                               schemas, sid)
    assert list(vals) == [(1 << 64) - 1, (1 << 63) + 5] and odd is None


@pytest.mark.parametrize(("text", "message"), [
    (b"a 1\nb\n", "line 2: expected 'key value'"),
    (b"a 1\nb x2\n", "line 2: expected an integer"),
    (b"a 1 2\n", "line 1: expected 'key value'"),
])
def test_bad_text_is_a_parse_error_naming_the_line(text: bytes, message: str) -> None:
    schemas = Schemas()
    sid, _, _ = parse_keyed("m", b"a 1\nb 2\n", schemas, -1)
    with pytest.raises(ParseError) as err:
        parse_keyed("/x/memory.stat", text, schemas, sid)
    assert err.value.path == "/x/memory.stat" and message in err.value.message


def _v1_dict(root: Path) -> tuple[dict[str, Any], Collector]:
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys")))
    d = snapshot_to_dict(c.collect())
    for k in ("new_cgroups", "series", "full", "kmem_slabinfo", "host_full"):
        del d[k]
    d["schema"] = "slabscope.snapshot/1"
    d["cgroups"] = [_cgroup(x) for x in c.live_cgroups()]
    return d, c


@pytest.mark.parametrize("tree", ["pre-5.3-v1-memcg-sysfs", "v2-6.12-subsys",
                                  "5.3-v1-memcg-slabinfo"])
def test_schema_1_cgroups_become_new_cgroups_and_tables(tree: str) -> None:
    d, c = _v1_dict(ERAS / tree)
    s = snapshot_from_dict(d)
    assert sorted(x.path for x in s.new_cgroups) == sorted(x.path for x in c.live_cgroups())
    check_tables(s, list(s.new_cgroups))
    assert s.host_full is True


def test_table_values_must_be_u64() -> None:
    c = Collector(CollectorOptions(proc_root=str(ERAS / "v2-6.12-subsys/proc"),
                                   sys_root=str(ERAS / "v2-6.12-subsys/sys")))
    d = snapshot_to_dict(c.collect())
    assert d["full"]["values"][0][0] is not None
    d["full"]["values"][0][0] = -1
    with pytest.raises(ValueError, match=r"full.values.0.0\n  Input should be greater than "
                                         "or equal to 0"):
        snapshot_from_dict(d)
    d["full"]["values"][0] = d["full"]["values"][0][1:]
    with pytest.raises(ValueError, match="values for"):
        snapshot_from_dict(d)


def test_with_problems_a_bad_line_is_recorded_and_the_good_lines_kept() -> None:
    schemas = Schemas()
    problems: list[Any] = []
    sid, vals, odd = parse_keyed("/x/memory.stat", b"file 4096\ngarbage here now\nanon -5\n"
                                 b"shmem 8192\n", schemas, -1, problems)
    assert dict(zip(schemas.names[sid], vals, strict=True)) == {"file": 4096, "anon": 0,
                                                                "shmem": 8192}
    assert odd == {"anon": -5}
    assert sorted((p.path, p.message.split(":")[0]) for p in problems) == [
        ("/x/memory.stat", "line 2"), ("/x/memory.stat", "line 3")]


def test_a_malformed_memory_stat_keeps_the_cgroup_and_its_good_figures(tmp_path: Path) -> None:
    from bench.scaletree import build
    tree = build(tmp_path / "h", "v2", 150, 3)
    bad = tree.cg_root / "slice-1" / "memory.stat"
    good = bad.read_text()
    bad.write_text(good + "garbage line here\n")
    c = Collector(CollectorOptions(proc_root=tree.proc, sys_root=tree.sys))
    snap = c.collect()
    errs = [e for e in snap.errors if e.path == str(bad)]
    assert len(errs) == 1 and "expected 'key value'" in errs[0].message  # once, not per read
    assert snap.full is not None
    row = snap.full.row(snap.full.paths.index("/slice-1"))
    want = {f"memory.stat:{k}": int(v) for k, v in (x.split() for x in good.splitlines())}
    assert {k: v for k, v in row.items() if k.startswith("memory.stat:")} == want
    tree.write_cgroup("/slice-1", random.Random(3))  # fixed; nothing is removed
    assert not [r for r in c.collect().removed if r.path == "/slice-1"]


def test_a_schema_1_snapshot_with_a_negative_value_reads_with_the_cell_absent() -> None:
    d, _ = _v1_dict(HOST)
    cg = next(c for c in d["cgroups"] if c["hierarchy"] == "memory" and c["memory_stat"])
    key = next(iter(cg["memory_stat"]))
    cg["memory_stat"][key] = -5  # an old collector's per-CPU drift
    snap = snapshot_from_dict(d)
    assert snap.full is not None
    row = snap.full.row([(h, p) for h, p in zip(snap.full.hierarchies, snap.full.paths,
                                                strict=True)].index(("memory", cg["path"])))
    assert f"memory.stat:{key}" not in row
    new = next(c for c in snap.new_cgroups if (c.hierarchy, c.path) == ("memory", cg["path"]))
    assert new.memory_stat[key] == -5  # kept as printed in the whole memory.stat
