#!/usr/bin/env python3
"""CPU cost of one default scrape of this host, against floors measured in the same run.

  * ours:   Collector.collect() in steady state (per-boot SLUB geometry cached), CPU time.
  * floor:  the exact files (and directory listings) that tick read, found with an audit
            hook, read by (a) tight Python: open/read/close and os.scandir only, and (b) C
            compiled on the fly with the same syscalls.
  * peer:   Debian's prometheus-node-exporter with its default collectors plus slabinfo,
            when installed: its own CPU (utime+stime) per HTTP scrape.
  * RSS:    the collector daemon (`slabscope collect`) after a dozen ticks into SQLite.

Targets (issue 2): ours <= 1.5x the floor, <= 0.25x node_exporter's CPU, daemon RSS <= 60 MB.
Only ratios are meaningful on this noisy machine; medians of many repetitions are printed.

`--cgroups N` (issue 8) instead builds a synthetic host of N cgroups on tmpfs (v1 or v2,
from real memory.stat files: this VM's and the fixtures', values varied per cgroup, each
directory with as many entries as a real one) and measures, in one process, interleaved:
  * one cgroup walk (every live cgroup's files read into the compact copy) against the
    read-and-convert floor of the same files: open+read each, int() of every number;
  * the CPU of a steady tick (listing, host files, no walk) and of a walk tick;
then the daemon's peak RSS (VmHWM) at that size in push mode and with a SQLite sink.
`--live N` measures the walk and ticks on this kernel with N real memory cgroups (root).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.collector.scrape import Collector, CollectorOptions

REPS = int(os.environ.get("BENCH_REPS", "300"))


def cpu() -> float:
    return time.process_time()


def median_cpu(fn, reps: int = REPS) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(reps):
        t = cpu()
        fn()
        samples.append(cpu() - t)
    return statistics.median(samples)


def record_tick(collector: Collector) -> tuple[list[str], list[str]]:
    """Which files a steady tick opens and which directories it lists, in order."""
    opened: list[str] = []
    listed: list[str] = []
    active = [False]

    def hook(event: str, args: tuple) -> None:  # type: ignore[type-arg]
        if not active[0]:
            return
        if event == "open" and isinstance(args[0], str):
            opened.append(args[0])
        elif event == "os.scandir":
            listed.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)
    active[0] = True
    collector.collect()
    active[0] = False
    return opened, listed


def python_floor(files: list[str], dirs: list[str], *, numbers: bool = False):  # type: ignore[no-untyped-def]
    """Read the same files (and list the same directories) with nothing else around it.

    With numbers=True also split each file and convert every decimal token to an int: the
    least any reader must do to have the values, with no validation and no records.
    """
    def run() -> None:
        for d in dirs:
            with os.scandir(d) as it:
                for e in it:
                    e.is_dir(follow_symlinks=False)
        for f in files:
            try:
                with open(f, "rb", buffering=0) as fh:
                    data = fh.read()
            except OSError:
                continue
            if numbers:
                [int(t) for t in data.split() if t.isdigit()]
    return run


C_SRC = r"""
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static char buf[1 << 20];
int main(int argc, char **argv) {
    /* argv[1]: list file of "D path" / "F path" lines; argv[2]: repetitions */
    FILE *lf = fopen(argv[1], "r"); int reps = atoi(argv[2]);
    char *lines[100000]; int n = 0; char line[8192];
    while (fgets(line, sizeof line, lf)) {
        line[strcspn(line, "\n")] = 0;
        lines[n++] = strdup(line);
    }
    double *t = malloc(sizeof(double) * reps);
    for (int r = 0; r < reps; r++) {
        struct timespec a, b; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        for (int i = 0; i < n; i++) {
            if (lines[i][0] == 'D') {
                DIR *d = opendir(lines[i] + 2); if (!d) continue;
                while (readdir(d)) {}
                closedir(d);
            } else {
                int fd = open(lines[i] + 2, O_RDONLY); if (fd < 0) continue;
                while (read(fd, buf, sizeof buf) > 0) {}
                close(fd);
            }
        }
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
        t[r] = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    }
    /* median */
    for (int i = 0; i < reps; i++)
        for (int j = i + 1; j < reps; j++)
            if (t[j] < t[i]) { double x = t[i]; t[i] = t[j]; t[j] = x; }
    printf("%.9f\n", t[reps / 2]);
    return 0;
}
"""


def c_floor(files: list[str], dirs: list[str], workdir: Path) -> float | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    src, exe, lst = workdir / "floor.c", workdir / "floor", workdir / "files.txt"
    src.write_text(C_SRC)
    subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
    lst.write_text("".join(f"D {d}\n" for d in dirs) + "".join(f"F {f}\n" for f in files))
    out = subprocess.run([str(exe), str(lst), str(REPS)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_exporter_cpu(reps: int = 60) -> float | None:
    exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exe is None:
        return None
    port = free_port()
    proc = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}",
                             "--collector.slabinfo"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(5):  # warm up
            urllib.request.urlopen(url, timeout=10).read()
        start = proc_cpu(proc.pid)
        for _ in range(reps):
            urllib.request.urlopen(url, timeout=10).read()
        return (proc_cpu(proc.pid) - start) / reps
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def daemon_rss(url: str, push_spool: Path | None = None) -> tuple[int, int]:
    """VmRSS and VmHWM (kB) of the daemon after about 16 ticks at 0.5 s into `url`.

    With `push_spool`, the collector runs in push mode towards a closed port (it spools).
    """
    env = dict(os.environ, SLABSCOPE_DATABASE_URL=url, SLABSCOPE_LOG_LEVEL="ERROR")
    root = Path(__file__).resolve().parent.parent
    extra: list[str] = []
    if push_spool is not None:
        token = push_spool.parent / "token"
        token.write_text("bench-token-0123456789")
        extra = ["--push", "http://127.0.0.1:9", "--token-file", str(token),
                 "--spool-dir", str(push_spool)]
    # `slabscope collect` migrates in a child, then execs the daemon: same pid throughout.
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "collect", "--interval", "0.5",
                             *extra], cwd=root, env=env, stderr=subprocess.DEVNULL)
    try:
        time.sleep(9)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        kb = {k: int(v.split()[0]) for k, v in (x.split(":", 1) for x in status.splitlines())
              if k in ("VmRSS", "VmHWM")}
        return kb["VmRSS"], kb["VmHWM"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def postgres_database() -> str | None:
    """A scratch PostgreSQL database for the RSS run, if a server answers (trust auth)."""
    admin = os.environ.get("SLABSCOPE_TEST_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        import psycopg
        from sqlalchemy.engine import make_url
        u = make_url(admin)
        with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username,
                             dbname=u.database, autocommit=True, connect_timeout=3) as c:
            c.execute("DROP DATABASE IF EXISTS slabscope_bench_rss WITH (FORCE)")
            c.execute("CREATE DATABASE slabscope_bench_rss")
        return str(u.set(database="slabscope_bench_rss").render_as_string(hide_password=False))
    except Exception:
        return None


def main() -> None:
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--cgroups", type=int, help="synthetic host of N cgroups (issue 8)")
    p.add_argument("--layout", choices=("v1", "v2"), default="v2")
    p.add_argument("--no-rss", action="store_true", help="skip the daemon RSS runs")
    p.add_argument("--live", type=int, help="N real memory cgroups on this kernel (root)")
    a = p.parse_args()
    if a.live:
        from bench.scale_tree import live_main
        live_main(a.live)
        return
    if a.cgroups:
        from bench.scale_tree import scale_main
        scale_main(a.cgroups, a.layout, rss=not a.no_rss)
        return
    collector = Collector(CollectorOptions())
    cold_start = cpu()
    collector.collect()
    cold = cpu() - cold_start
    files, dirs = record_tick(collector)
    ours = median_cpu(collector.collect)
    py_floor = median_cpu(python_floor(files, dirs))
    num_floor = median_cpu(python_floor(files, dirs, numbers=True))
    with tempfile.TemporaryDirectory() as tmp:
        c = c_floor(files, dirs, Path(tmp))
        peer = node_exporter_cpu()
        rss, hwm = daemon_rss(f"sqlite:///{Path(tmp) / 'rss.db'}")
        pg = postgres_database()
        pg_rss = daemon_rss(pg) if pg else None
        push_rss = daemon_rss("sqlite://", push_spool=Path(tmp) / "spool")
    print(f"steady tick reads {len(files)} files and lists {len(dirs)} directories")
    print(f"first (cold) tick, with SLUB geometry:   {cold * 1e3:8.3f} ms CPU")
    print(f"slabscope steady tick (median of {REPS}): {ours * 1e3:8.3f} ms CPU")
    print(f"floor, tight Python, same files:        {py_floor * 1e3:8.3f} ms CPU")
    print(f"ratio ours / Python floor:              {ours / py_floor:8.2f}x   (target <= 1.5x)")
    print(f"floor + every number converted:         {num_floor * 1e3:8.3f} ms CPU")
    print(f"ratio ours / read-and-convert floor:    {ours / num_floor:8.2f}x   (target <= 1.5x)")
    if c is not None:
        print(f"floor, C, same files:                   {c * 1e3:8.3f} ms CPU")
        print(f"ratio ours / C floor:                   {ours / c:8.2f}x")
    if peer is not None:
        print(f"node_exporter defaults+slabinfo:        {peer * 1e3:8.3f} ms CPU per scrape")
        print(f"ratio ours / node_exporter:             {ours / peer:8.2f}x   (target <= 0.25x)")
    else:
        print("node_exporter: not installed (apt-get install prometheus-node-exporter)")
    print(f"daemon RSS, SQLite, after ~16 ticks:    {rss / 1024:8.1f} MB (peak {hwm / 1024:.1f} MB;"
          f" target <= 60 MB)")
    print(f"daemon RSS, push mode (no database):    {push_rss[0] / 1024:8.1f} MB (peak "
          f"{push_rss[1] / 1024:.1f} MB)")
    if pg_rss is not None:
        print(f"daemon RSS, PostgreSQL (psycopg):       {pg_rss[0] / 1024:8.1f} MB (peak "
              f"{pg_rss[1] / 1024:.1f} MB)")


if __name__ == "__main__":
    main()
