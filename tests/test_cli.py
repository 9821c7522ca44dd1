"""The `slabscope` command: collect --once (json, table), doctor, migrate."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from app.cli import cli
from tests.conftest import ERAS

runner = CliRunner()


def _roots(name: str) -> list[str]:
    return ["--proc-root", str(ERAS / name / "proc"), "--sys-root", str(ERAS / name / "sys")]


def test_collect_once_json_schema() -> None:
    r = runner.invoke(cli, ["collect", "--once", "--format", "json",
                            *_roots("pre-5.3-v1-memcg-sysfs")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["schema"] == "slabscope.snapshot/2"
    assert d["host"]["name"] == "web-frontend-419" and d["host"]["era"] == "pre-5.3"
    assert d["host"]["cpus"] == 4 and d["host"]["cgroup_layout"] == "hybrid"
    assert d["memcg"] == {"num_cgroups": 57, "total": 57, "visible": 4, "dying": 53,
                          "method": d["memcg"]["method"]}
    assert d["meminfo"]["slab"] == 412300 * 1024 and d["meminfo"]["percpu"] == 23040 * 1024
    k = next(c for c in d["caches"] if c["name"] == "kmalloc-64")
    assert {x: k[x] for x in ("aliases", "object_size", "objs_per_slab", "order", "active_objs",
                              "num_objs", "num_slabs")} == {
        "aliases": ["eventpoll_pwq", "fasync_cache"], "object_size": 64, "objs_per_slab": 64,
        "order": 0, "active_objs": 51200, "num_objs": 55296, "num_slabs": 864}
    assert k["bytes"] == 864 * k["pages_per_slab"] * d["host"]["page_size_bytes"]
    t = d["series"]
    i = next(i for i, (h, p) in enumerate(zip(t["hierarchies"], t["paths"], strict=True))
             if (h, p) == ("unified", "/system.slice"))
    assert t["values"][t["columns"].index("cgroup.stat:nr_dying_descendants")][i] == 1
    assert d["new_cgroups"] == [] and d["host_full"] is True
    assert d["removed"] == [] and d["errors"] == []


def test_collect_once_table() -> None:
    r = runner.invoke(cli, ["collect", "--once", "--format", "table", *_roots("v2-6.12-subsys")])
    assert r.exit_code == 0
    assert "memcgs: 123 total, 5 visible, 118 dying" in r.stdout
    assert "kmalloc-cg-192" in r.stdout
    assert "5 cgroups; largest by memory usage:" in r.stdout


def test_doctor_explains_what_is_missing() -> None:
    r = runner.invoke(cli, ["doctor", *_roots("v2-5.15-dying")])
    assert r.exit_code == 0, r.output
    assert "[--] slub-sysfs" in r.stdout and "SLAB allocator, or sysfs not mounted" in r.stdout
    assert "cache geometry and merged aliases" in r.stdout.split("it will not show:")[1]
    r = runner.invoke(cli, ["doctor", "--json", *_roots("5.3-v1-memcg-slabinfo")])
    d = json.loads(r.stdout)
    checks = {c["source"]: c for c in d["checks"]}
    assert checks["memcg_slabinfo"]["ok"] and checks["memcg_slabinfo"]["detail"] == "6 rows"
    assert not checks["slub-memcg-sysfs"]["ok"]
    assert "slub_memcg_sysfs=1" in checks["slub-memcg-sysfs"]["detail"]
    assert d["facts"]["era"].startswith("5.3")


def test_migrate_reports_a_bad_database_clearly() -> None:
    r = runner.invoke(cli, ["migrate", "--database",
                            "postgresql+psycopg://nobody@127.0.0.1:1/none"])
    assert r.exit_code == 2
    assert "slabscope: cannot migrate postgresql+psycopg://nobody@127.0.0.1:1/none" in r.output
    assert "Traceback" not in r.output


def test_simulate_dead_cgroups_before_and_from_53() -> None:
    r = runner.invoke(cli, ["simulate", "--scenario", "test_kmem_dead_cgroups", "--era",
                            "pre-5.3", "--era", "5.3"])
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()
            if line.startswith(("pre-5.3", "5.3"))}
    assert rows["pre-5.3"][1:4] == ["0", "30", "30"]  # dying at 0 s, 5 s, 10 s: they stay
    assert rows["5.3"][1:4] == ["0", "0", "0"]  # gone from 5.3


def test_simulate_json_csv_and_errors() -> None:
    r = runner.invoke(cli, ["simulate", "--scenario", "threads-moved-away", "--format", "json",
                            "--era", "objcg"])
    d = json.loads(r.stdout)
    assert list(d["eras"]) == ["objcg"] and max(d["eras"]["objcg"]["dying"]) > 300
    r = runner.invoke(cli, ["simulate", "--scenario", "append-then-remove", "--format", "csv",
                            "--era", "5.3"])
    assert r.stdout.splitlines()[0].startswith("era,seconds,live,dying")
    assert runner.invoke(cli, ["simulate", "--scenario", "nope"]).exit_code == 2
    assert runner.invoke(cli, ["simulate", "--era", "4.4"]).exit_code == 2
