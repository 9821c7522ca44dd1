"""Every knob and constant of the model has a source or an assumption label."""

from __future__ import annotations

import ast
import importlib
import inspect

from app.simulation import knobs
from app.simulation.knobs import Knob, _status, registry


def test_every_knob_is_sourced_or_an_assumption() -> None:
    missing = [f"{k.group} {k.name}: {k.note!r}" for k in registry() if k.status == "missing"]
    assert missing == []


def test_every_group_is_registered_with_both_labels() -> None:
    groups = {(k.group, k.status) for k in registry()}
    assert {("constant", "source"), ("constant", "assumption"), ("era fact", "source"),
            ("era fact", "assumption"), ("workload preset", "source"),
            ("workload preset", "assumption")} <= groups


def test_every_module_level_number_of_the_model_is_a_knob() -> None:
    # Scanned independently of knobs.constants(): each UPPER_CASE module number is listed.
    listed = {k.name for k in registry() if k.group == "constant"}
    for modname in knobs.MODULES:
        mod = importlib.import_module(modname)
        for node in ast.parse(inspect.getsource(mod)).body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                value = getattr(mod, name)
                qual = f"{modname}.{name}"
                if (name.isupper() and isinstance(value, (int, float))
                        and not isinstance(value, bool) and qual not in knobs.UNITS):
                    assert qual.removeprefix("app.") in listed, qual


def test_labels_are_read_from_comments() -> None:
    assert _status("MEMCG_CHARGE_BATCH until late 2022 (kernel-notes.md 6)") == "source"
    assert _status("an RCU wait [assumption]") == "assumption"
    assert _status("commit 772616b031f0") == "source"
    assert _status("20190313183953.17854-1-guro@fb.com") == "source"
    assert _status("about 20 ms") == "missing"
    by_name = {k.name: k for k in registry()}
    batch = by_name["simulation.selftests.BATCH_PAGES"]
    assert batch == Knob("constant", "simulation.selftests.BATCH_PAGES", "32", "source",
                         "MEMCG_CHARGE_BATCH until late 2022 (kernel-notes.md 6)")
    assert by_name["simulation.selftests.RCU_FREE_SECONDS"].status == "assumption"
    assert by_name["release_delay_seconds"].status == "assumption"  # an era fact
    dead = by_name["test_kmem_dead_cgroups: classes[0].count"]
    assert dead.value == "30" and dead.status == "source" and "kernel-notes.md 4" in dead.note
