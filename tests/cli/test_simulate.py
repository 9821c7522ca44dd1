"""`slabscope simulate`: CPUs, NUMA nodes, pressure, rates and a workload file; bad values
give one line on stderr and status 2."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.domain.cost import model_for_era
from app.simulation.engine import simulate
from app.simulation.workload import DENTRY, JobClass, Kind, Leftover, Pressure, Workload

runner = CliRunner()


def _run(*args: str) -> dict[str, Any]:
    r = runner.invoke(cli, ["simulate", "--format", "json", *args])
    assert r.exit_code == 0, r.output
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _cronjobs(*args: str) -> dict[str, Any]:
    era: dict[str, Any] = _run("--scenario", "kubernetes-cronjobs", "--era", "objcg-kmem",
                               "--days", "1", *args)["eras"]["objcg-kmem"]
    return era


def test_cpus_and_nodes_set_the_cost_of_a_dying_memcg() -> None:
    model = model_for_era("objcg-kmem")
    for cpus, nodes in ((2, 1), (32, 1), (32, 4)):
        e = _cronjobs("--cpus", str(cpus), "--numa-nodes", str(nodes))
        assert e["dying"][-1] > 0
        assert e["dying_cost_bytes"][-1] == pytest.approx(
            e["dying"][-1] * model.bytes(cpus, nodes))


def test_pressure_frees_what_pins() -> None:
    base = _cronjobs()["dying"][-1]
    # objcg-kmem: page cache pins; reclaiming it 50 times faster frees most memcgs, and
    # without reclaim every removed pod's memcg stays.
    fast = _cronjobs("--pagecache-per-day", "50")["dying"][-1]
    none = _cronjobs("--pagecache-per-day", "0")
    assert fast < base / 4
    assert none["dying"][-1] == none["created_total"] - none["live"][-1] >= base
    assert none["never_freed"] == none["created_total"]
    # pre-5.3: slab pins too; no slab reclaim keeps every removed pod's memcg.
    pre = _run("--scenario", "kubernetes-cronjobs", "--era", "pre-5.3", "--days", "1",
               "--slab-per-day", "0", "--pagecache-per-day", "50")["eras"]["pre-5.3"]
    removed = pre["created_total"] - pre["live"][-1]
    assert pre["dying"][-1] == removed and pre["never_freed"] == pre["created_total"]


def test_rates_and_scale() -> None:
    base = _cronjobs()["created_total"]  # Poisson, 2000 a day
    doubled = _cronjobs("--rate", "cronjob-pod=4000")["created_total"]
    halved = _cronjobs("--scale", "0.5")["created_total"]
    assert 1.8 < doubled / base < 2.2 and 0.4 < halved / base < 0.6
    # A timer: its period follows the rate (timer-0.service runs every 300 s: 288 a day).
    timers = _run("--scenario", "systemd-timers-web", "--era", "objcg-kmem", "--days", "1",
                  "--rate", "timer-0.service=144")["eras"]["objcg-kmem"]["created_total"]
    plain = _run("--scenario", "systemd-timers-web", "--era", "objcg-kmem", "--days", "1"
                 )["eras"]["objcg-kmem"]["created_total"]
    assert plain - timers == 289 - 145  # one at 0 s, then every period up to the end


def test_workload_file_in_the_api_body_format(tmp_path: pathlib.Path) -> None:
    body = {"name": "mine", "days": 0.5, "step_seconds": 600, "eras": ["pre-5.3", "objcg"],
            "pressure": {"slab_per_day": 2.0, "pagecache_per_day": 1.0},
            "classes": [{"name": "job", "lifetime_seconds": 60, "period_seconds": 120,
                         "leftovers": [{"kind": "slab", "amount": 50,
                                        "cache": {"name": "dentry"}}]}]}
    f = tmp_path / "w.json"
    f.write_text(json.dumps(body))
    got = _run("--workload", str(f), "--seed", "4")
    assert got["scenario"] == "mine" and list(got["eras"]) == ["pre-5.3", "objcg"]
    w = Workload("mine", (JobClass("job", 0, 60.0, (Leftover(Kind.SLAB, 50, DENTRY),),
                                   period_seconds=120.0),),
                 Pressure(2.0, 1.0), duration_seconds=43_200.0, step_seconds=600.0)
    want = simulate(w, ["pre-5.3", "objcg"], seed=4).eras
    assert got["eras"]["pre-5.3"]["dying"] == want["pre-5.3"].dying
    assert got["eras"]["objcg"]["dying"] == want["objcg"].dying
    # --era and --cpus override the file's
    e = _run("--workload", str(f), "--era", "5.3", "--cpus", "8")["eras"]
    assert list(e) == ["5.3"]


def _error(*args: str) -> str:
    r = runner.invoke(cli, ["simulate", *args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--cpus", "0"], "slabscope: cpus: Input should be greater than or equal to 1"),
    (["--cpus", "5000"], "slabscope: cpus: Input should be less than or equal to 4096"),
    (["--numa-nodes", "0"], "slabscope: numa_nodes: Input should be greater than or equal"),
    (["--slab-per-day", "-1"], "slabscope: pressure.slab_per_day: Input should be greater"),
    (["--pagecache-per-day", "1e9"], "slabscope: pressure.pagecache_per_day: Input should"),
    (["--rate", "cronjob-pod"], "slabscope: --rate wants CLASS=PER_DAY"),
    (["--rate", "cronjob-pod=lots"], "slabscope: --rate wants CLASS=PER_DAY"),
    (["--rate", "cronjob-pod=-3"], "slabscope: --rate wants CLASS=PER_DAY"),
    (["--rate", "web=3"], "slabscope: --rate: no class 'web'; classes: cronjob-pod"),
    (["--rate", "cronjob-pod=1e7"], "slabscope: classes.0.per_day: Input should be less"),
    (["--scale", "0"], "slabscope: --scale must be a number above 0, not 0"),
    (["--scale", "nan"], "slabscope: --scale must be a number above 0, not nan"),
    (["--days", "0"], "slabscope: --days must be above 0, not 0"),
    (["--days", "400"], "slabscope: days: Input should be less than or equal to 365"),
    (["--era", "4.4"], "slabscope: unknown era 4.4; eras: pre-5.3, v4-5/7, 5.3, objcg"),
    (["--scenario", "nope"], "slabscope: no scenario 'nope'; presets: systemd-timers-web"),
])
def test_bad_values_are_one_line(args: list[str], message: str) -> None:
    assert _error(*args).startswith(message)


def test_bad_workload_files_are_one_line(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "none.json"
    assert _error("--workload", str(missing)) == \
        f"slabscope: --workload {missing}: No such file or directory"
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert _error("--workload", str(bad)).startswith(f"slabscope: --workload {bad}: not "
                                                     "UTF-8 JSON")
    bad.write_text("[1, 2]")
    assert _error("--workload", str(bad)).endswith("a JSON object is needed (the body of "
                                                   "POST /api/v1/simulations)")
    bad.write_text(json.dumps({"name": "x"}))
    assert _error("--workload", str(bad)) == "slabscope: classes: Field required"
    bad.write_text(json.dumps({"classes": [{"name": "a", "lifetime_seconds": 1,
                                            "colour": "red"}], "days": -1}))
    assert _error("--workload", str(bad)) == \
        "slabscope: days: Input should be greater than 0 (and 1 more)"


def test_a_huge_or_endless_or_deep_workload_file_is_one_line(tmp_path: pathlib.Path) -> None:
    # Read no further than the API's body bound: /dev/zero once took 22 GB before the OOM
    # killer; a 100,000-deep nesting was a RecursionError traceback.
    assert _error("--workload", "/dev/zero") == \
        "slabscope: --workload /dev/zero: over 256 KiB, the bound of a simulation body"
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"name": "x" * (256 * 1024)}))
    assert _error("--workload", str(big)).endswith("over 256 KiB, the bound of a simulation "
                                                   "body")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert _error("--workload", str(deep)) == \
        f"slabscope: --workload {deep}: JSON nested too deep"


def test_seed_step_and_the_work_budget() -> None:
    assert _error("--seed", "-1") == "slabscope: --seed must be 0 to 2^63-1, not -1"
    assert _error("--step-seconds", "0") == "slabscope: --step-seconds must be above 0, not 0"
    # The API's budget, before any CPU is spent: 4.8 M cgroups a day for 30 days.
    over = _error("--scenario", "kubernetes-cronjobs", "--rate", "cronjob-pod=160000",
                  "--days", "30")
    assert over.startswith("slabscope: the simulation's estimated work is ") and \
        "over the budget of 3e+09 (SLABSCOPE_SIMULATION_MAX_WORK" in over
    # --step-seconds sets the grid the budget message asks to coarsen.
    e = _run("--scenario", "kubernetes-cronjobs", "--era", "objcg-kmem", "--days", "2",
             "--step-seconds", "7200")["eras"]["objcg-kmem"]
    assert e["times_seconds"][:3] == [0.0, 7200.0, 14400.0]
