"""The wire schema (app/fleet/wire.py) is the collector's: real collector output validates and
round-trips, /openapi.json and `slabscope schema` show it, and it refuses what it must."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from app.cli import cli
from app.collector.scrape import Collector, CollectorOptions
from app.config import Settings
from app.domain.samples import Snapshot
from app.domain.snapshot_json import encode_snapshot, snapshot_to_dict
from app.fleet import wire
from app.main import create_app
from tests.collector import faultroots as fr
from tests.collector.test_faults import collect
from tests.conftest import ERAS, HOST

ENVELOPE = {"snapshot_id": "0123456789abcdef", "spool_dropped_total": 3}


def pushed(s: Snapshot) -> wire.PushBody:
    """What the push sink sends for `s`, as the server validates it."""
    return wire.parse_push("".join(encode_snapshot(s, dict(ENVELOPE))).encode(),
                           now=datetime.now(UTC))


def check_round_trip(s: Snapshot) -> None:
    body = pushed(s)
    assert body.snapshot_id == "0123456789abcdef" and body.spool_dropped_total == 3
    assert wire.to_snapshot(body.snapshot) == s


def ticks(root: Path, n: int = 2) -> list[Snapshot]:
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys")))
    return [c.collect() for _ in range(n)]


@pytest.mark.parametrize("tree", sorted(p.name for p in ERAS.iterdir()))
def test_era_trees_validate_and_round_trip(tree: str) -> None:
    for s in ticks(ERAS / tree):
        check_round_trip(s)


def test_this_host_validates_and_round_trips() -> None:
    c = Collector(CollectorOptions())
    first = c.collect()
    assert first.caches or first.errors  # something real was read
    for s in (first, c.collect()):
        check_round_trip(s)


def _fifo(root: Path) -> None:
    fr.proc_files_as(root, "fifo")
    fr.cgroup_file_as(root, "fifo")


def _dev_zero(root: Path) -> None:
    fr.proc_files_as(root, "/dev/zero")
    fr.cgroup_file_as(root, "/dev/zero")


def _loops(root: Path) -> None:
    fr.symlink_loop_files(root)
    fr.symlink_loops_in_tree(root)


def _huge(root: Path) -> None:
    fr.u64_and_huge(root)
    (root / "proc/vmstat").write_text(f"nr_free_pages -3\nnr_slab {2**64 - 1}\npgscan 5\n")


def _wide(root: Path) -> None:
    fr.wide_tree(root, 2_000)


_garbage = fr.truncated_binary_empty
_non_utf8 = fr.non_utf8_name


def _nul_identity(root: Path) -> None:
    # Hostile identity files and a line whose error message quotes a NUL: a snapshot the
    # schema refuses would be lost to rejected/ as a whole.
    (root / "etc/machine-id").write_bytes(b"ab\x00cd" + b"e" * 10_000 + b"\n")
    (root / "proc/sys/kernel/hostname").write_bytes(b"vm\x00x\n")
    with open(root / "proc/vmstat", "ab") as f:
        f.write(b"nr_odd 5\x00\nnr_\x00key 7\n")


@pytest.mark.parametrize("breakage", [_fifo, _dev_zero, _loops, _garbage, _huge, _non_utf8,
                                      _wide, _nul_identity])
def test_fault_roots_validate_and_round_trip(tmp_path: Path,
                                             breakage: Callable[[Path], None]) -> None:
    root = tmp_path / "host"
    shutil.copytree(HOST, root, symlinks=True)
    breakage(root)
    s = collect(root)
    check_round_trip(s)
    if breakage is _huge:  # the s64 and u64 figures travel exactly; 10**30 is an error
        assert s.vmstat == {"nr_free_pages": -3, "nr_slab": 2**64 - 1, "pgscan": 5}
        assert any("outside the 64-bit range" in e.message for e in s.errors)
    if breakage is _nul_identity:
        assert s.host.hostname == "vm\\x00x"
        assert s.host.machine_id == ("ab\\x00cd" + "e" * 64)[:64]
        assert any("5\\x00" in e.message for e in s.errors), s.errors
        # The two bad lines are errors of their own; the file's good lines are all kept.
        assert len(s.vmstat) == 192 and "nr_free_pages" in s.vmstat
        assert any("nr_\\x00key" in e.message for e in s.errors), s.errors


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_openapi_shows_the_push_schema_and_every_ref_resolves() -> None:
    app = create_app(Settings(database_url="sqlite://"))
    with TestClient(app) as c:
        doc = c.get("/openapi.json").json()
    body = doc["paths"]["/api/v1/ingest"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PushBody"}
    assert "Content-Encoding: gzip" in body["description"]
    push = doc["components"]["schemas"]["PushBody"]
    assert push["required"] == ["snapshot_id", "snapshot"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)
    assert "#/components/schemas/SnapshotV2" in refs and "#/components/schemas/WireTable" in refs
    for ref in refs:
        assert isinstance(_resolve(doc, ref), dict), ref
    v2 = doc["components"]["schemas"]["SnapshotV2"]["properties"]
    assert v2["host"] == {"$ref": "#/components/schemas/WireHost"}
    host = doc["components"]["schemas"]["WireHost"]["properties"]
    assert host["page_size_bytes"]["type"] == "integer"  # required, not nullable
    assert "page_size_bytes" in doc["components"]["schemas"]["WireHost"]["required"]


def test_cli_prints_the_schema() -> None:
    r = CliRunner().invoke(cli, ["schema"])
    assert r.exit_code == 0, r.output
    schema = json.loads(r.output)
    assert schema == wire.push_json_schema()
    assert schema["title"] == "PushBody"
    assert schema["$defs"]["WireCache"]["properties"]["active_objs"]["maximum"] == 2**64 - 1


def _valid() -> dict[str, Any]:
    s = ticks(ERAS / "v2-6.12-subsys", 1)[0]
    d = json.loads(json.dumps(snapshot_to_dict(s)))
    d["errors"].append({"source": "test", "path": "/x", "message": "a failed read"})
    return {**ENVELOPE, "snapshot": d}


def _fails(body: dict[str, Any], where: str, now: datetime | None = None) -> str:
    with pytest.raises(ValidationError) as err:
        wire.parse_push(json.dumps(body), now=now)
    detail = wire.validation_detail(err.value)
    assert detail.startswith(where), detail
    return detail


@pytest.mark.parametrize(("path", "value", "message"), [
    ("host.page_size_bytes", "4096", "Input should be a valid integer"),
    ("host.page_size_bytes", 4096.0, "Input should be a valid integer"),
    ("host.page_size_bytes", True, "Input should be a valid integer"),
    ("host.page_size_bytes", None, "Input should be a valid integer"),
    ("host.name", 12, "Input should be a valid string"),
    ("caches.0.name", None, "Input should be a valid string"),
    ("caches.0.num_objs", -1, "Input should be greater than or equal to 0"),
    ("caches.0.num_objs", 2**64, "Input should be less than or equal to 18446744073709551615"),
    ("full.paths.0", None, "Input should be a valid string"),
    ("full.paths.0", "no-slash", "String should match pattern '^/[^\\x00]*$'"),
    ("full.values.0.0", "1", "Input should be a valid integer"),
    ("vmstat.nr_free_pages", -(2**63) - 1, "Input should be greater than or equal to"),
    ("taken_at", "2026-11-30T12:00:00", "Input should have timezone info"),
    ("host_full", 1, "Input should be a valid boolean"),
    ("caches.0.name", "kmalloc\x00-64", "String should match pattern"),  # PostgreSQL: no NUL
    ("errors.0.message", "x" * 65_537, "String should have at most 65536 characters"),
])
def test_wrong_types_and_bounds_name_the_place(path: str, value: Any, message: str) -> None:
    body = _valid()
    node: Any = body["snapshot"]
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    assert message in _fails(body, f"snapshot.{path}: ")


def test_a_table_of_inconsistent_shape_is_refused() -> None:
    body = _valid()
    body["snapshot"]["full"]["hierarchies"].pop()
    assert "hierarchies for" in _fails(body, "snapshot.full: Value error, ")
    body = _valid()
    body["snapshot"]["series"]["values"][1].pop()
    assert "values for" in _fails(body, "snapshot.series: Value error, column ")


def test_the_edges_of_u64_and_s64_are_accepted() -> None:
    body = _valid()
    body["snapshot"]["caches"][0]["num_objs"] = 2**64 - 1
    body["snapshot"]["vmstat"]["nr_free_pages"] = -(2**63)
    s = wire.to_snapshot(wire.parse_push(json.dumps(body)).snapshot)
    assert s.caches[0].num_objs == 2**64 - 1 and s.vmstat["nr_free_pages"] == -(2**63)


def test_taken_at_past_the_clock_skew_is_refused() -> None:
    body = _valid()
    now = datetime.now(UTC)
    body["snapshot"]["taken_at"] = (now + timedelta(minutes=11)).isoformat()
    assert "ahead of the server's clock" in _fails(body, "snapshot.taken_at", now=now)
    body["snapshot"]["taken_at"] = (now + timedelta(minutes=9)).isoformat()
    wire.parse_push(json.dumps(body), now=now)


def test_counted_churn_travels_and_round_trips() -> None:
    c = Collector(CollectorOptions())
    assert c.collect().churn == ()  # the first tick of a collector counts nothing
    s = c.collect()
    assert s.churn and {x.hierarchy for x in s.churn} <= {"memory", "unified"}
    check_round_trip(s)
    d = snapshot_to_dict(s)
    assert d["churn"][0]["created"] == s.churn[0].created
