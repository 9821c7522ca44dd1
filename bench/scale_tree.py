"""A synthetic host of N cgroups on tmpfs, and the collector measured on it (bench/scrape.py).

Files come from real kernels: v1 from this VM's /sys/fs/cgroup/memory (or the host-6.18
fixture), v2 from the opencontainers fs2 capture (40 keys) and the 6.12 fixture's
cgroup.stat. Values are varied per cgroup so conversions are not of one repeated string.
Each cgroup directory also holds empty entries named like a real one's control files, so a
listing (scandir) costs what it costs on a host.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

from app.collector.cgstate import read_bytes
from app.collector.errors import CollectorError
from app.collector.scrape import Collector, CollectorOptions
from bench import scaletree

ROOT = Path(__file__).resolve().parent.parent
def build(root: Path, n: int, layout: str) -> Path:
    """Build the host under root (proc, sys, etc) with n cgroups (half as many dying)."""
    scaletree.build(root, layout, n, n // 2)
    return root


def _walk(c: Collector) -> None:
    assert c._boot is not None and c._boot.cgroups is not None
    errors: list[CollectorError] = []
    at = datetime.now(UTC)
    for hs in c._boot.cgroups.states:
        for rel in hs.entries:
            hs.read(rel, at, errors)
    assert not errors, errors[:3]


def _floor_files(c: Collector) -> list[tuple[str, bool]]:
    """The files one walk reads, and whether each is a keyed file."""
    assert c._boot is not None and c._boot.cgroups is not None
    out = []
    for hs in c._boot.cgroups.states:
        names = (["memory.stat", "memory.usage_in_bytes"] + (
            ["memory.kmem.usage_in_bytes"] if hs.has_kmem else [])) if hs.v1 else (
            ["cgroup.stat"] + (["memory.stat"] if hs.has_stat else []))
        for rel in hs.entries:
            d = hs.dir_of(rel)
            for name in names:
                out.append((d + "/" + name, name.endswith(".stat")))
            if not hs.v1 and hs.has_stat and rel != "/":
                out.append((d + "/memory.current", False))
    return out


def _floor(files: list[tuple[str, bool]]) -> None:
    """Open and read each file, int() every number: no schema, no validation, no records."""
    for path, keyed in files:
        data = read_bytes(path)
        if keyed:
            [int(t) for t in data.split()[1::2]]
        else:
            int(data)


def measure(root: Path, reps: int) -> dict[str, float]:
    """Walk/floor interleaved, and the CPU of steady and walk ticks (medians, seconds)."""
    c = Collector(CollectorOptions(proc_root=str(root / "proc"), sys_root=str(root / "sys"),
                                   page_size_bytes=4096))
    t = time.process_time()
    first = c.collect()
    first_cpu = time.process_time() - t
    assert first.series is not None
    files = _floor_files(c)
    walk, floor = [], []
    for _ in range(reps):
        t = time.process_time()
        _walk(c)
        walk.append(time.process_time() - t)
        t = time.process_time()
        _floor(files)
        floor.append(time.process_time() - t)
    ratios = [w / f for w, f in zip(walk, floor, strict=True)]
    steady, walked = [], []
    for _ in range(max(3, reps // 2)):
        c.walk.next_at = float("inf")  # a steady tick: listing, host files, no walk
        t = time.process_time()
        c.collect()
        steady.append(time.process_time() - t)
        c.walk.next_at = 0.0  # a walk tick
        t = time.process_time()
        c.collect()
        walked.append(time.process_time() - t)
    assert c._boot is not None and c._boot.cgroups is not None
    tracker = c._boot.cgroups
    t = time.process_time()
    tracker.series_table()
    series_cpu = time.process_time() - t
    t = time.process_time()
    tracker.full_table()
    full_cpu = time.process_time() - t
    from app.domain.snapshot_json import encode_snapshot
    t = time.process_time()
    z = zlib.compressobj(5, zlib.DEFLATED, 31)
    body = sum(len(z.compress(x.encode())) for x in encode_snapshot(first, {})) + len(
        z.flush())
    encode_cpu = time.process_time() - t
    avg = (4 * statistics.median(steady) + statistics.median(walked) - statistics.median(
        steady) + series_cpu / 5 + full_cpu / 360) / 60
    return {"cgroups": len(first.series), "files": len(files), "first_tick": first_cpu,
            "series": series_cpu, "full": full_cpu, "encode": encode_cpu, "body": body,
            "avg": avg,
            "walk": statistics.median(walk), "floor": statistics.median(floor),
            "ratio": statistics.median(ratios), "steady_tick": statistics.median(steady),
            "walk_tick": statistics.median(walked)}


def daemon_hwm(root: Path, work: Path, sink: str, ticks: int = 4) -> int:
    """VmHWM (kB) of the daemon on the tree after `ticks` ticks, started as `slabscope
    collect` starts it: settings validated here, passed as JSON on a pipe."""
    from app.config import Settings
    values: dict[str, object] = {
        "proc_root": str(root / "proc"), "sys_root": str(root / "sys"), "log_level": "ERROR",
        "collect_interval_seconds": 1.0, "spool_dir": str(work / "spool")}
    if sink == "push":
        (work / "token").write_text("bench-token-0123456789")
        values.update(push_url="http://127.0.0.1:9", token_file=str(work / "token"))
        module = "app.collector"
    else:
        values["database_url"] = f"sqlite:///{work / 'bench.db'}"
        module = "app.collector" if sink == "sqlite" else "bench.scale_tree"
        if sink == "sqlite":
            subprocess.run([sys.executable, "-m", "app.cli", "migrate", "--database",
                            str(values["database_url"])], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r, w = os.pipe()
    os.write(w, Settings(**values).model_dump_json().encode())  # type: ignore[arg-type]
    os.close(w)
    argv = [sys.executable, "-m", module, "--settings-fd", str(r)]
    if module == "bench.scale_tree":
        argv.insert(3, "standin")
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, text=True, pass_fds=(r,))
    os.close(r)
    status = Path(f"/proc/{proc.pid}/status")
    hwm = 0
    try:
        deadline = time.monotonic() + 30 + ticks * 3
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            line = next((x for x in status.read_text().splitlines()
                         if x.startswith("VmHWM")), None)
            if line is None:  # exited (a zombie has no memory lines)
                break
            hwm = int(line.split()[1])
            done = len(list((work / "spool").glob("*.json.gz"))) if sink == "push" else \
                _scrapes(work / "bench.db")
            if done >= ticks:
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    if proc.returncode not in (0, None):
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"daemon ({sink}) failed: {err[-2000:]}")
    return hwm


def _scrapes(db: Path) -> int:
    import sqlite3
    try:
        with sqlite3.connect(db) as c:
            return int(c.execute("SELECT count(*) FROM scrape").fetchone()[0])
    except sqlite3.Error:
        return 0


def standin_daemon() -> None:
    """The real daemon loop and DatabaseSink into SQLite, with a stand-in for
    store.write_snapshot (being rewritten): it loads app.db.store and the models as the real
    one does, packs the series/full tables with cgtable.pack_table and inserts one row a tick
    into a `scrape` table. Measures everything but the real store's own per-tick objects."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from app.collector.__main__ import read_config
    from app.collector.daemon import Daemon
    from app.collector.dbsink import DatabaseSink
    from app.db import store  # noqa: F401  (its import cost is part of the baseline)
    from app.db.session import make_engine, make_session_factory
    from app.domain.cgtable import pack_table
    from app.domain.samples import Snapshot

    s = read_config(int(sys.argv[3]))
    engine = make_engine(s.database_url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE scrape (taken_at TEXT, series BLOB, full_stat BLOB)"))

    def write(session: Session, snap: Snapshot) -> None:
        blobs = []
        for t in (snap.series, snap.full):
            blobs.append(None if t is None else pack_table(
                t.columns, range(len(t)), t.values, t.present))
        session.execute(text("INSERT INTO scrape VALUES (:t, :s, :f)"),
                        {"t": snap.taken_at.isoformat(), "s": blobs[0], "f": blobs[1]})

    d = Daemon(Collector(s.options), DatabaseSink(make_session_factory(engine), write),
               s.interval_seconds)
    d.install_signal_handlers()
    d.run()


def scale_main(n: int, layout: str, *, rss: bool = True) -> None:
    """Build the tree, measure, print the rows."""
    reps = int(os.environ.get("BENCH_REPS", "15"))
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        t = time.monotonic()
        root = build(Path(tmp) / "host", n, layout)
        print(f"synthetic {layout} host, {n} cgroups on tmpfs, built in "
              f"{time.monotonic() - t:.1f}s")
        m = measure(root, reps)
        print(f"cgroups in the compact copy:             {m['cgroups']:>10}")
        print(f"files one walk reads:                    {m['files']:>10}")
        print(f"one walk (median of {reps}):                {m['walk'] * 1e3:10.1f} ms CPU")
        print(f"read-and-convert floor, same files:      {m['floor'] * 1e3:10.1f} ms CPU")
        print(f"walk / floor (median of per-rep ratios): {m['ratio']:10.2f}x   (target <= 1.5x)")
        print(f"first tick (walk + series + full):       {m['first_tick'] * 1e3:10.1f} ms CPU")
        print(f"steady tick (listing, host files):       {m['steady_tick'] * 1e3:10.1f} ms CPU")
        print(f"walk tick (steady + walk):               {m['walk_tick'] * 1e3:10.1f} ms CPU")
        print(f"series table from the compact copy:      {m['series'] * 1e3:10.1f} ms CPU")
        print(f"full table from the compact copy:        {m['full'] * 1e3:10.1f} ms CPU")
        print(f"push body of the first tick (gzip JSON): {m['encode'] * 1e3:10.1f} ms CPU, "
              f"{m['body'] / 1024:.0f} kB")
        print(f"collector CPU at defaults, no sink:      {m['avg'] * 100:10.2f} % of a core"
              "   (15 s ticks, 60 s walk, 300 s series, 6 h full; target <= 5 %)")
        if rss:
            for sink in ("push", "sqlite", "sqlite-standin"):
                work = Path(tmp) / f"run-{sink}"
                work.mkdir()
                try:
                    hwm = daemon_hwm(root, work, sink)
                    print(f"daemon VmHWM, {sink + ' sink:':21}{hwm / 1024:20.1f} MB"
                          "   (target <= 60 MB)")
                except RuntimeError as err:
                    print(f"daemon VmHWM, {sink} sink: not measured: {str(err)[-300:]}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["standin"]:  # standin --settings-fd N
        standin_daemon()


def live_main(n: int) -> None:
    """Walk/floor and tick CPU on this kernel: n real memory cgroups under a parent of ours."""
    base = next((p for p in (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup"))
                 if (p / "memory.stat").exists() or (p / "cgroup.subtree_control").exists()),
                None)
    if base is None:
        print("live: no memory cgroup hierarchy here")
        return
    parent = base / "slabscope-bench-live"
    parent.mkdir(exist_ok=True)
    try:
        for i in range(n):
            (parent / f"cg-{i:05d}").mkdir(exist_ok=True)
        m = measure(Path("/"), int(os.environ.get("BENCH_REPS", "15")))
    finally:
        for d in parent.iterdir():
            if d.is_dir():
                d.rmdir()
        parent.rmdir()
    print(f"live, {n} real memory cgroups under {parent} ({m['cgroups']} in all)")
    print(f"one walk / read-and-convert floor:       {m['ratio']:10.2f}x   "
          f"({m['walk'] * 1e3:.1f} / {m['floor'] * 1e3:.1f} ms CPU)")
    print(f"steady tick / walk tick:                 {m['steady_tick'] * 1e3:10.1f} / "
          f"{m['walk_tick'] * 1e3:.1f} ms CPU")
    print(f"collector CPU at defaults, no sink:      {m['avg'] * 100:10.2f} % of a core")
