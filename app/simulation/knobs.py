"""Every knob and constant of the model, with its source or its assumption label.

Four groups, shown on /simulate (and in its JSON twin) so a reader can tell a kernel fact
from a guess:

* constants: the module-level numbers of the model's modules (engine, workload, calibration,
  selftests, protocol, costs). Each one's label is read from its own comment (the line, or
  the comment that heads its paragraph): a citation (kernel-notes.md, lab-findings.md, a
  kernel path, a commit, a Message-ID, a bench script) makes it sourced; the word
  "assumption" makes it an assumption. `LABELS` gives the label of constants whose comment
  has neither; a constant with neither is "missing", and tests/simulation/test_knobs.py
  fails on it;
* era facts: each field of the era registry, its value per era, and FACT_SOURCES;
* workload presets: every number of every preset, sourced where the preset reproduces a
  published reproducer or the selftest (PRESET_SOURCES), else an assumption;
* cost models: the published figures of app/domain/cost.py, with their `source`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import re
from dataclasses import dataclass
from typing import Any, Literal

from app.domain.eras import ERAS, FACT_SOURCES
from app.simulation.scenarios import PRESETS

Status = Literal["source", "assumption", "missing"]
MODULES = ("app.simulation.engine", "app.simulation.workload", "app.simulation.calibrate",
           "app.simulation.selftests", "app.simulation.protocol", "app.domain.cost")
_SOURCE = re.compile(
    r"kernel-notes|lab-findings|DESIGN\.md|\b(?:mm|include|tools|arch|kernel|fs)/[\w/.-]+"
    r"|\b[0-9a-f]{12,40}\b|\S+@\S+\.\w+|\bbench/|test_kmem|MEMCG_CHARGE_BATCH|THREAD_SIZE"
    r"|PAGE_SIZE|SLUB sysfs")
_ASSUMPTION = re.compile(r"\bassum(?:ption|ed)\b", re.IGNORECASE)

# Labels of constants whose own comment carries neither a citation nor the word assumption.
LABELS: dict[str, str] = {
    "app.simulation.engine.PAGE": "PAGE_SIZE on x86_64 (4 KiB)",
    "app.simulation.engine.KSTACK_PAGES": "THREAD_SIZE on x86_64: 16 KiB "
                                          "(arch/x86/include/asm/page_64_types.h)",
    "app.simulation.engine.MIN_RATE": "assumption: a numerical floor, below which nothing "
                                      "goes within any horizon simulated",
    "app.simulation.engine.KRONECKER": "assumption: a quasi-random sequence for thinned "
                                       "classes (numerical method, no kernel fact)",
    "app.simulation.engine.ADMIT_BINS": "assumption: a numerical resolution (admission "
                                        "steps once the memcg-ID space is full)",
    "app.simulation.calibrate.MAX_RUN_STEPS": "assumption: a cost bound (the engine's grid "
                                              "over history and horizon), no kernel fact",
    "app.simulation.calibrate.INITIAL_SPREAD_SECONDS": "assumption: a numerical device, "
                                                       "shorter than every era's release "
                                                       "delay",
    "app.simulation.engine.WORK_BASE": "bench/simulations.py --fit (the fixed part of a run)",
    "app.simulation.workload.DENTRY": "SLUB sysfs of the lab's 6.18 VM: /sys/kernel/slab/"
                                      "dentry (192 B, 21 a slab, order 0, reclaimable)",
    "app.simulation.workload.KMALLOC_192": "SLUB sysfs of the lab's 6.18 VM: /sys/kernel/"
                                           "slab/kmalloc-192 (192 B, 21 a slab, order 0)",
    "app.simulation.workload.INODE": "assumption: 5.x geometry; the lab's 6.18 VM has "
                                     "616 B, 13 a slab, order 1",
    "app.simulation.workload.EXT4_INODE": "assumption: 5.x geometry; the lab's 6.18 VM has "
                                          "1120 B, 14 a slab, order 2",
    "app.simulation.workload.SOCK": "assumption: 5.x geometry; the lab's 6.18 VM has "
                                    "768 B, 19 a slab, order 2",
    "app.simulation.calibrate.MU_GRID": "assumption: the page-cache reclaim rates a fit "
                                        "searches (per day)",
    "app.simulation.calibrate.P_GRID": "assumption: the shares of removals that leave page "
                                       "cache a fit searches",
    "app.simulation.calibrate.ASSUMED_DENTRIES": "assumption: dentries a removed cgroup "
                                                 "leaves when the host does not say",
    "app.simulation.calibrate.MAX_COHORT": "assumption: a cost bound of the engine, not a "
                                           "kernel fact",
    "app.simulation.calibrate.MAX_STEPS": "assumption: a cost bound of the engine, not a "
                                          "kernel fact",
    "app.simulation.selftests.PAGE": "PAGE_SIZE on x86_64 (4 KiB)",
    "app.simulation.selftests.BASIC_DENTRIES": "test_kmem.c sizes (kernel-notes.md 4, 6)",
    "app.simulation.selftests.STACK_THREADS": "test_kmem.c sizes (kernel-notes.md 4, 6)",
    "app.simulation.selftests.PERCPU_CHILDREN": "test_kmem.c sizes (kernel-notes.md 4, 6)",
    "app.simulation.selftests.POLLS": "test_kmem.c windows: 5 x 1 s (5.9-2025), 80 x 100 ms "
                                      "(Dec 2025+) (kernel-notes.md 4)",
    "app.simulation.selftests.NR_CPUS": "lab-findings.md: the lab's VM has 2 CPUs",
    "app.domain.cost.FROM_5_9": "kernel-notes.md 5.1: Vasily Averin, 'memcg: accounting "
                                "for objects allocated by mkdir, cgroup' v5 (2022-06-23)",
}
# Units, not knobs.
UNITS = frozenset({"app.domain.cost.KIB"})

# Preset numbers that reproduce a published reproducer or the selftest; every other number
# of a preset is an illustrative assumption.
PRESET_SOURCES: dict[str, dict[str, str]] = {
    "threads-moved-away": {
        "classes[0].count": "kernel-notes.md 2(e)1: Muchun Song's reproducer, 500 iterations",
        "classes[0].leftovers[0].mean_life_seconds": "kernel-notes.md 2(e)1: `sleep 3600`"},
    "append-then-remove": {
        "classes[0].count": "kernel-notes.md 2(e)2: the 2025 RFC's reproducer, 2001 "
                            "iterations",
        "classes[0].leftovers[0].amount": "kernel-notes.md 2(e)2: append 4 KiB (one page)"},
    "test_kmem_dead_cgroups": {
        "classes[0].count": "kernel-notes.md 4: 30 sequential children",
        "classes[0].leftovers[0].amount": "kernel-notes.md 4: 100 negative dentries each",
        "pressure.slab_per_day": "kernel-notes.md 4: no memory pressure in the test",
        "pressure.pagecache_per_day": "kernel-notes.md 4: no memory pressure in the test",
        "duration_seconds": "kernel-notes.md 4: the ~5 s window (plus the 80 x 100 ms one)"},
}
_PRESET_ASSUMPTION = "assumption: an illustrative value of this preset"


@dataclass(frozen=True, slots=True)
class Knob:
    """One knob: where it lives, its value, and whether a source or an assumption backs it."""

    group: str  # "constant", "era fact", "workload preset", "cost model"
    name: str
    value: str
    status: Status
    note: str


def _status(text: str) -> Status:
    if _ASSUMPTION.search(text):
        return "assumption"
    return "source" if _SOURCE.search(text) else "missing"


def _is_knob(value: Any) -> bool:
    """Numbers, and containers or records of numbers (not strings, tables of code, eras)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(_is_knob(v) for v in value)
    if isinstance(value, dict) and value:
        return all(_is_knob(v) for v in value.values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_is_knob(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def _short(value: Any) -> str:
    text = repr(value)
    if isinstance(value, list) and len(value) > 6:
        text = f"[{value[0]:.3g} .. {value[-1]:.3g}, {len(value)} values]"
    return text if len(text) <= 90 else text[:87] + "..."


def _comments(lines: list[str], node: ast.stmt) -> str:
    """The comments on a statement's lines and the comment heading its paragraph."""
    end = node.end_lineno or node.lineno
    own = [ln.split("#", 1)[1].strip() for ln in lines[node.lineno - 1:end] if "#" in ln]
    head: list[str] = []
    i = node.lineno - 2
    while i >= 0 and lines[i].strip():  # up through the paragraph (no blank line)
        stripped = lines[i].strip()
        if stripped.startswith("#"):
            head.insert(0, stripped.lstrip("# "))
        elif head:
            break
        i -= 1
    return " ".join(own + head)


def constants() -> list[Knob]:
    """The module-level numbers of the model's modules, labelled from their comments."""
    out = []
    for modname in MODULES:
        mod = importlib.import_module(modname)
        lines = inspect.getsource(mod).splitlines()
        for node in ast.parse("\n".join(lines)).body:
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, ast.AnnAssign) else [])
            for t in targets:
                names = ([t.id] if isinstance(t, ast.Name) else
                         [e.id for e in t.elts if isinstance(e, ast.Name)]
                         if isinstance(t, ast.Tuple) else [])
                for name in names:
                    if not name.isupper() or not _is_knob(getattr(mod, name, None)):
                        continue
                    qual = f"{modname}.{name}"
                    if qual in UNITS:
                        continue
                    value = getattr(mod, name)
                    note = LABELS.get(qual) or getattr(value, "source", "") or \
                        _comments(lines, node)
                    out.append(Knob("constant", qual.removeprefix("app."), _short(value),
                                    _status(note), note))
    return out


def era_facts() -> list[Knob]:
    """Each field of the era registry: its value in every era, and its source."""
    out = []
    for f in dataclasses.fields(next(iter(ERAS.values()))):
        if f.name in ("name", "kernels", "summary", "pins"):
            continue  # words, not knobs
        values = " · ".join(f"{n}: {getattr(e, f.name)}" for n, e in ERAS.items())
        note = FACT_SOURCES[f.name]
        out.append(Knob("era fact", f.name, values, _status(note), note))
    return out


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [kv for fl in dataclasses.fields(value)
                for kv in _flatten(f"{prefix}.{fl.name}" if prefix else fl.name,
                                   getattr(value, fl.name))]
    if isinstance(value, (list, tuple)):
        return [kv for i, v in enumerate(value) for kv in _flatten(f"{prefix}[{i}]", v)]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [(prefix, value)]
    return []


def presets() -> list[Knob]:
    """Every number of every preset workload, sourced or an assumption."""
    out = []
    for name, w in PRESETS.items():
        given = PRESET_SOURCES.get(name, {})
        for path, value in _flatten("", w):
            if ".cache." in path:
                continue  # cache geometry: the constants of workload.py
            note = given.get(path, _PRESET_ASSUMPTION)
            out.append(Knob("workload preset", f"{name}: {path}", _short(value),
                            _status(note), note))
    return out


@functools.cache
def registry() -> tuple[Knob, ...]:
    """Every knob of the model: constants, era facts, presets (fixed for the process)."""
    return tuple(constants() + era_facts() + presets())
