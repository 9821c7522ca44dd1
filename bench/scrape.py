#!/usr/bin/env python3
"""CPU cost of one default scrape of this host, against floors and a peer, all interleaved.

  * ours:   Collector.collect() in steady state (per-boot SLUB geometry cached), CPU time.
  * floor:  the exact files (and directory listings) that tick read, found with an audit
            hook, read by (a) tight Python: open/read/close and os.scandir only, and (b) C
            compiled on the fly with the same syscalls.
  * peer:   Debian's prometheus-node-exporter doing the same work: `--collector.disable-defaults`
            with only slabinfo, meminfo, vmstat and cgroups (its cgroups collector reads
            /proc/cgroups), scraped over loopback; its CPU (utime+stime of the whole process,
            /proc/<pid>/stat) per scrape, against our readers of the same four files and our
            whole tick, measured in the same loop.
  * RSS:    the collector daemon (`slabscope collect`) after a dozen ticks into SQLite.

Every ratio is the median of per-round ratios, subject and baseline alternating in one loop
(bench/_interleave.py). Targets (issue 2): ours <= 1.5x the floor, <= 0.25x node_exporter's
CPU, daemon RSS <= 60 MB. Only ratios are meaningful on this noisy machine.

`--cgroups N` (issue 8, bench/scale_tree.py from the collector's branch) instead builds a
synthetic host of N cgroups on tmpfs (v1 or v2, from real memory.stat files: this VM's and
the fixtures', values varied per cgroup, each directory with as many entries as a real one)
and measures, in one process, interleaved:
  * one cgroup walk (every live cgroup's files read into the compact copy) against the
    read-and-convert floor of the same files: open+read each, int() of every number;
  * the CPU of a steady tick (listing, host files, no walk) and of a walk tick;
then the daemon's peak RSS (VmHWM) at that size in push mode and with a SQLite sink.

Usage: python bench/scrape.py [--quick] [--rounds N]
       python bench/scrape.py --cgroups N [--layout v1|v2] [--no-rss]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.collector.scrape import Collector, CollectorOptions
from app.collector.sources import procfs, slabinfo
from bench._interleave import interleave, median_ratio

NODE_EXPORTER_COLLECTORS = ("slabinfo", "meminfo", "vmstat", "cgroups")


def cpu() -> float:
    return time.process_time()


def per_call(fn, block: int):  # type: ignore[no-untyped-def]
    """A case for interleave(): CPU seconds per call of fn, over `block` calls."""
    def run() -> float:
        t = cpu()
        for _ in range(block):
            fn()
        return (cpu() - t) / block
    return run


def same_sources(proc_root: str = "/proc"):  # type: ignore[no-untyped-def]
    """Our readers of exactly the files node_exporter's four collectors read."""
    def run() -> None:
        slabinfo.read_slabinfo(proc_root)
        procfs.read_meminfo(proc_root)
        procfs.read_vmstat(proc_root)
        procfs.read_proc_cgroups(proc_root)
    return run


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


def c_floor(files: list[str], dirs: list[str], workdir: Path, block: int):  # type: ignore[no-untyped-def]
    """A case for interleave(): the C floor's median CPU per read of the same files."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    src, exe, lst = workdir / "floor.c", workdir / "floor", workdir / "files.txt"
    src.write_text(C_SRC)
    subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
    lst.write_text("".join(f"D {d}\n" for d in dirs) + "".join(f"F {f}\n" for f in files))

    def run() -> float:
        out = subprocess.run([str(exe), str(lst), str(block)], capture_output=True, text=True,
                             check=True)
        return float(out.stdout)
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class NodeExporter:
    """prometheus-node-exporter on a loopback port with only the four collectors we match."""

    def __init__(self, exe: str) -> None:
        port = free_port()
        # vmstat: every field, as our snapshot parses every /proc/vmstat line (its default
        # regex exports a handful; it reads and splits the whole file either way).
        flags = ["--collector.disable-defaults", "--collector.vmstat.fields=.*",
                 *(f"--collector.{c}" for c in NODE_EXPORTER_COLLECTORS)]
        self.proc = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}", *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(100):
            try:
                self.body = urllib.request.urlopen(self.url, timeout=5).read()
                break
            except OSError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise SystemExit(f"node_exporter exited: {err[-500:]}") from None
                time.sleep(0.1)
        for _ in range(5):  # warm up
            urllib.request.urlopen(self.url, timeout=10).read()

    def collectors(self) -> dict[str, bool]:
        """node_scrape_collector_success per collector, from its own /metrics."""
        out: dict[str, bool] = {}
        for line in self.body.decode().splitlines():
            if line.startswith("node_scrape_collector_success{"):
                name = line.split('collector="', 1)[1].split('"', 1)[0]
                out[name] = line.rsplit(" ", 1)[1] == "1"
        return out

    def case(self, block: int):  # type: ignore[no-untyped-def]
        """A case for interleave(): its CPU seconds per scrape, over `block` scrapes."""
        def run() -> float:
            start = proc_cpu(self.proc.pid)
            for _ in range(block):
                urllib.request.urlopen(self.url, timeout=10).read()
            return (proc_cpu(self.proc.pid) - start) / block
        return run

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def daemon_rss(url: str, push_spool: Path | None = None, seconds: float = 9
               ) -> tuple[int, int]:
    """VmRSS and VmHWM (kB) of the daemon after `seconds` of ticks at 0.5 s into `url`.

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
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "collect", "--interval",
                                 "0.5", *extra], cwd=root, env=env, stderr=err)
        try:
            time.sleep(seconds)
            if proc.poll() is not None:
                err.seek(0)
                raise SystemExit(f"the collector daemon exited ({proc.returncode}): "
                                 f"{err.read().decode(errors='replace')[-800:]}")
            status = Path(f"/proc/{proc.pid}/status").read_text()
            kb = {k: int(v.split()[0]) for k, v in
                  (x.split(":", 1) for x in status.splitlines()) if k in ("VmRSS", "VmHWM")}
            return kb["VmRSS"], kb["VmHWM"]
        finally:
            if proc.poll() is None:
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
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="few rounds, SQLite RSS only")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 30, "
                    "--quick 5)")
    ap.add_argument("--cgroups", type=int, help="synthetic host of N cgroups (issue 8)")
    ap.add_argument("--layout", choices=("v1", "v2"), default="v2")
    ap.add_argument("--no-rss", action="store_true", help="skip the daemon RSS runs")
    a = ap.parse_args()
    if a.cgroups:
        from bench.scale_tree import scale_main
        scale_main(a.cgroups, a.layout, rss=not a.no_rss)
        return
    rounds = a.rounds or (5 if a.quick else 30)
    block = 10  # calls per case per round
    collector = Collector(CollectorOptions())
    cold_start = cpu()
    collector.collect()
    cold = cpu() - cold_start
    files, dirs = record_tick(collector)
    with tempfile.TemporaryDirectory() as tmp:
        cases = {"ours": per_call(collector.collect, block),
                 "py": per_call(python_floor(files, dirs), block),
                 "num": per_call(python_floor(files, dirs, numbers=True), block)}
        c = c_floor(files, dirs, Path(tmp), block)
        if c is not None:
            cases["c"] = c
        r = interleave(cases, rounds)
        peer = peer_rounds(collector, rounds, 20 if a.quick else 50)
        rss, hwm = daemon_rss(f"sqlite:///{Path(tmp) / 'rss.db'}", seconds=5 if a.quick else 9)
        pg = None if a.quick else postgres_database()
        pg_rss = daemon_rss(pg) if pg else None
        push_rss = None if a.quick else daemon_rss("sqlite://", push_spool=Path(tmp) / "spool")
    med = {k: sorted(v)[len(v) // 2] for k, v in r.items()}
    print(f"steady tick reads {len(files)} files and lists {len(dirs)} directories; "
          f"{rounds} interleaved rounds of {block} calls")
    print(f"first (cold) tick, with SLUB geometry:   {cold * 1e3:8.3f} ms CPU")
    print(f"slabscope steady tick (median round):    {med['ours'] * 1e3:8.3f} ms CPU")
    print(f"floor, tight Python, same files:        {med['py'] * 1e3:8.3f} ms CPU")
    print(f"ratio ours / Python floor:              {median_ratio(r['ours'], r['py']):8.2f}x"
          "   (target <= 1.5x)")
    print(f"floor + every number converted:         {med['num'] * 1e3:8.3f} ms CPU")
    print(f"ratio ours / read-and-convert floor:    {median_ratio(r['ours'], r['num']):8.2f}x"
          "   (target <= 1.5x)")
    if "c" in r:
        print(f"floor, C, same files:                   {med['c'] * 1e3:8.3f} ms CPU")
        print(f"ratio ours / C floor:                   {median_ratio(r['ours'], r['c']):8.2f}x")
    print_peer(peer)
    print(f"daemon RSS, SQLite, after a few ticks:  {rss / 1024:8.1f} MB (peak {hwm / 1024:.1f} MB;"
          f" target <= 60 MB)")
    if push_rss is not None:
        print(f"daemon RSS, push mode (no database):    {push_rss[0] / 1024:8.1f} MB (peak "
              f"{push_rss[1] / 1024:.1f} MB)")
    if pg_rss is not None:
        print(f"daemon RSS, PostgreSQL (psycopg):       {pg_rss[0] / 1024:8.1f} MB (peak "
              f"{pg_rss[1] / 1024:.1f} MB)")


def peer_rounds(collector: Collector, rounds: int, block: int
                ) -> tuple[dict[str, list[float]], dict[str, bool]] | None:
    """node_exporter's CPU per scrape, our same-source readers and our tick, interleaved."""
    exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exe is None:
        return None
    ne = NodeExporter(exe)
    try:
        r = interleave({"node_exporter": ne.case(block),
                        "same": per_call(same_sources(), block),
                        "tick": per_call(collector.collect, block)}, rounds)
        return r, ne.collectors()
    finally:
        ne.close()


def print_peer(peer: tuple[dict[str, list[float]], dict[str, bool]] | None) -> None:
    if peer is None:
        print("node_exporter: not installed (apt-get install prometheus-node-exporter)")
        return
    r, ran = peer
    med = {k: sorted(v)[len(v) // 2] for k, v in r.items()}
    ok = ", ".join(f"{k}{'' if v else ' (FAILED)'}" for k, v in sorted(ran.items()))
    print(f"node_exporter, only {ok}:")
    print(f"  its CPU per scrape (/proc/<pid>/stat): {med['node_exporter'] * 1e3:8.3f} ms")
    print(f"  ours, same four files parsed:          {med['same'] * 1e3:8.3f} ms CPU   ratio "
          f"{median_ratio(r['same'], r['node_exporter']):.2f}x")
    print(f"  ours, whole steady tick:               {med['tick'] * 1e3:8.3f} ms CPU   ratio "
          f"{median_ratio(r['tick'], r['node_exporter']):.2f}x   (target <= 0.25x)")


if __name__ == "__main__":
    main()
