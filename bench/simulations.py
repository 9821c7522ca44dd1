#!/usr/bin/env python3
"""POST /api/v1/simulations: the work estimate against measured time, and the largest run.

1. The fit: a grid of workloads (cgroups, leftovers, events, steps, eras; periodic and
   Poisson classes) run in process; for each, the engine's estimate (app/simulation/engine.py
   work(), units of about 1 ns) beside the measured time, the ratio's range, and the weights
   a non-negative least-squares fit of the same terms gives on this machine.
2. The largest body the default budget (SLABSCOPE_SIMULATION_MAX_WORK) accepts, through the
   app in process (TestClient; the route runs it in a child process): wall time, the child's
   peak RSS, this server process's RSS before and after, and, interleaved run by run, the
   same workload in process, so the off-process overhead is a ratio of the same run.

Usage: python bench/simulations.py [--quick] [--runs 5] [--no-fit]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.schemas.simulation import SimulationIn
from app.services.model import to_workload
from app.simulation import engine, sandbox

ERAS = ["pre-5.3", "v4-5/7", "5.3", "objcg", "objcg-kmem", "lru-reparent"]
KINDS = ["slab", "pagecache", "shmem", "kstack"]


def body(cgroups: int, leftovers: int = 8, events: int = 4, steps: int = 2000, eras: int = 6,
         periodic: bool = False, seed: int = 0) -> dict[str, Any]:
    """One class of `cgroups` over 30 days with leftovers of every kind (as the tests)."""
    days = 30
    lefts = [{"kind": KINDS[i % 4], "amount": 10 + i,
              **({"cache": {"name": "dentry"}} if KINDS[i % 4] == "slab" else {})}
             for i in range(leftovers)]
    job: dict[str, Any] = {"name": "jobs", "lifetime_seconds": 600, "leftovers": lefts}
    if periodic:
        job["period_seconds"] = days * 86_400 / cgroups
    else:
        job["per_day"] = cgroups / days
    return {"name": "bench", "days": days, "step_seconds": days * 86_400 / (steps - 1),
            "eras": ERAS[:eras], "seed": seed, "classes": [job],
            "events": [{"at_seconds": days * 86_400 * (j + 1) / (events + 1),
                        "kind": ["drop_caches", "delete_files"][j % 2], "mode": 3}
                       for j in range(events)]}


def prepared(b: dict[str, Any]) -> tuple[engine.Workload, list[str], engine.Work]:
    s = SimulationIn.model_validate(b)
    w = to_workload(s)
    return w, list(s.eras), engine.work(w, len(s.eras))


def rss() -> int:
    return sandbox.status_bytes("VmRSS")


def fit(quick: bool) -> None:
    grid = [(n, lf, x, k, e, p)
            for n in ((2_000, 50_000) if quick else (2_000, 50_000, 250_000))
            for lf in (1, 12) for x in (0, 8) for k in (200, 2000) for e in (1, 6)
            for p in (False, True)]
    if quick:
        grid = grid[::3]
    names = list(engine.WORK_WEIGHTS)
    rows, measured, ratios = [], [], []
    for n, lf, x, k, e, p in grid:
        w, eras, wk = prepared(body(n, lf, x, k, e, p))
        t = time.perf_counter()
        engine.simulate(w, eras)
        dt = time.perf_counter() - t
        rows.append([wk.terms[name] / engine.WORK_WEIGHTS[name] for name in names] + [1e6])
        measured.append(dt)
        ratios.append(dt / (wk.total / 1e9))
        print(f"  {n:>7} cgroups {lf:>2} leftovers {x} events {k:>4} steps {e} eras "
              f"{'periodic' if p else 'poisson '}: {dt:7.3f} s, estimate "
              f"{wk.total / 1e9:7.3f} s, ratio {ratios[-1]:.2f}", flush=True)
    y = np.array(measured)
    big = y > 1.0
    print(f"measured / estimate: {min(ratios):.2f} to {max(ratios):.2f} over {len(y)} runs; "
          + (f"{y[big].size} runs over 1 s: {np.min(np.array(ratios)[big]):.2f} to "
             f"{np.max(np.array(ratios)[big]):.2f}" if big.any() else "no run over 1 s"))
    # Non-negative least squares of the same terms (relative errors weigh alike).
    a = np.array(rows) / (y + 0.05)[:, None]
    b = y / (y + 0.05)
    active = list(range(a.shape[1]))
    while True:
        c, *_ = np.linalg.lstsq(a[:, active], b, rcond=None)
        if (c >= 0).all():
            break
        active.pop(int(np.argmin(c)))
    coef = np.zeros(a.shape[1])
    coef[active] = c
    got = {name: round(float(v) * 1e9, 2) for name, v in zip([*names, "base"], coef,
                                                              strict=True)}
    print(f"fitted weights here (ns): {got}; in engine.WORK_WEIGHTS: {engine.WORK_WEIGHTS}")


def largest_accepted(budget: float) -> dict[str, Any]:
    """The body of the test shape with the most cgroups the budget accepts."""
    lo, hi = 1_000, 5_000_000
    while hi - lo > 1_000:
        mid = (lo + hi) // 2
        if prepared(body(mid))[2].total <= budget:
            lo = mid
        else:
            hi = mid
    return body(lo)


def largest(runs: int) -> None:
    budget = Settings().simulation_max_work
    b = largest_accepted(budget)
    w, eras, wk = prepared(b)
    print(f"largest accepted body ({len(eras)} eras, {wk.steps} steps, {wk.leftovers} "
          f"leftovers, {len(b['events'])} events, {wk.cgroups:,.0f} cgroups): estimate "
          f"{wk.total:.3g} of a budget of {budget:.3g}")
    with tempfile.TemporaryDirectory() as d, \
            TestClient(create_app(Settings(database_url=f"sqlite:///{d}/b.db"))) as client:
        assert client.post("/api/v1/simulations", json=b).status_code == 200  # warm up
        limits = sandbox.Limits(Settings().simulation_memory_bytes,
                                Settings().simulation_cpu_seconds,
                                Settings().simulation_timeout_seconds)
        peak = sandbox.run_measured(w, eras, b["seed"], limits)[1]
        gc.collect()
        before = rss()
        off = []
        for i in range(runs):
            t = time.perf_counter()
            r = client.post("/api/v1/simulations", json={**b, "seed": i})
            off.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
            del r
        gc.collect()
        after_off = rss()
        inproc = []
        for i in range(runs):  # what the route did before: the same runs in this process
            t = time.perf_counter()
            engine.simulate(w, eras, seed=i)
            inproc.append(time.perf_counter() - t)
        gc.collect()
        after_in = rss()
    o, p = float(np.median(off)), float(np.median(inproc))
    print(f"  POST wall time (median of {runs}): {o:.2f} s; the same workload in process: "
          f"{p:.2f} s; ratio {o / p:.2f} (off-process overhead {o - p:+.2f} s, "
          f"{(o - p) / p:+.0%})")
    print(f"  child peak RSS: {peak / 2**20:.0f} MiB; server RSS {before / 2**20:.0f} MiB, "
          f"after {runs} POSTs {after_off / 2**20:.0f} MiB (delta "
          f"{(after_off - before) / 2**20:+.0f} MiB), after {runs} more in process "
          f"{after_in / 2**20:.0f} MiB (delta {(after_in - after_off) / 2**20:+.0f} MiB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small grid, 2 runs")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-fit", action="store_true")
    args = ap.parse_args()
    if not args.no_fit:
        print("work estimate vs measured time (in process):")
        fit(args.quick)
    largest(2 if args.quick else args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
