"""Push validation cost: the wire schema's one pass against a bare JSON parse, same run.

Builds a synthetic host (bench/scaletree.py) of 10,000 cgroups, collects it, encodes the
push body as the push sink does, then times, interleaved, (a) `json.loads` of the body (what
ingest did before the schema, minus its unchecked conversion) and (b) what ingest does now:
`PushBody.model_validate_json` (strict types and bounds) plus `to_snapshot`. Prints medians
and the ratio b/a. Measured once against the previous reader (json.loads +
snapshot_from_dict, unchecked): 0.93-1.11x on a loaded 2-core machine.

    .venv/bin/python bench/wire.py [--cgroups 10000] [--runs 15] [--layout v2]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.collector.scrape import Collector, CollectorOptions
from app.domain.snapshot_json import encode_snapshot
from app.fleet import wire
from bench.scaletree import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cgroups", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--layout", choices=["v1", "v2"], default="v2")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = build(Path(tmp) / "host", a.layout, a.cgroups, 10)
        s = Collector(CollectorOptions(proc_root=t.proc, sys_root=t.sys)).collect()
    body = "".join(encode_snapshot(s, {"snapshot_id": "0123456789abcdef"})).encode()
    if wire.to_snapshot(wire.parse_push(body).snapshot) != s:
        sys.exit("FAIL: the validated snapshot differs from the collected one")
    runs: dict[str, list[float]] = {"parse": [], "validate": []}
    cases: dict[str, Callable[[], object]] = {
        "parse": lambda: json.loads(body),
        "validate": lambda: wire.to_snapshot(wire.parse_push(body).snapshot)}
    for _ in range(a.runs):  # interleaved: machine load hits both alike
        for name, f in cases.items():
            gc.collect()
            t0 = time.perf_counter()
            f()
            runs[name].append(time.perf_counter() - t0)
    p, v = statistics.median(runs["parse"]), statistics.median(runs["validate"])
    n = len(s.full.paths) if s.full else 0
    print(f"{a.layout}: body {len(body) / 1e6:.1f} MB, {n} cgroups; json.loads {p * 1e3:.0f} ms, "
          f"model_validate_json + to_snapshot {v * 1e3:.0f} ms; ratio {v / p:.2f}")


if __name__ == "__main__":
    main()
