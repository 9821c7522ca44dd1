"""Run a simulation in a child process with bounded memory, CPU and wall time.

The child is forked from a forkserver that has already imported the engine (numpy), and is
started before it is needed (multiprocessing imports the server's main module in every child,
which takes longer than a small simulation): a standby waits for one job. It sets its own
RLIMIT_AS and RLIMIT_CPU, runs the engine, sends the result back through a pipe and exits,
which returns all its memory to the system. The parent only waits (in a thread, off the
event loop) and kills the child at the wall-clock limit.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import resource
import signal
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from app.simulation.engine import SimulationResult, simulate
from app.simulation.workload import Workload

_ctx = multiprocessing.get_context("forkserver")
# The server's modules too: every child runs the server's main module again (app.cli, as
# __mp_main__), which is quick only when what it imports is already there.
_ctx.set_forkserver_preload(["app.simulation.sandbox", "app.main", "app.cli"])


@dataclass(frozen=True, slots=True)
class Limits:
    """What one simulation may use."""

    memory_bytes: int  # address space the child may add to what it starts with
    cpu_seconds: int  # RLIMIT_CPU of the child
    wall_seconds: float  # the parent kills the child after this long


class SimulationLimitError(Exception):
    """A simulation was stopped by one of its limits; `kind` says which."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "memory", "cpu" or "wall"


class SimulationCrashed(Exception):
    """The child ended without a result for another reason (killed from outside, a bug)."""


def status_bytes(field: str) -> int:
    """A size from /proc/self/status (VmSize, VmRSS, VmHWM, ...), in bytes."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - every Linux has them


def _child(conn: multiprocessing.connection.Connection) -> None:
    """A standby: wait for one job, run it within its limits, send the result, exit."""
    # Ctrl-C reaches the whole process group: the server stops its standbys itself (a
    # KeyboardInterrupt traceback from a standby waiting in recv() told the user nothing).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        w, eras, seed, limits = conn.recv()
    except EOFError:  # the server went away before giving it a job
        return
    resource.setrlimit(resource.RLIMIT_AS, (status_bytes("VmSize") + limits.memory_bytes,) * 2)
    # CPU time counts from the process's start (its imports): the limit is on top of that.
    # SIGXCPU at the soft limit (its default action ends the process); SIGKILL a second on.
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(used.ru_utime + used.ru_stime) + limits.cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    msg: tuple[str, Any]
    try:
        msg = ("ok", (simulate(w, eras, seed=seed), status_bytes("VmHWM")))
    except MemoryError:
        msg = ("memory", None)
    except Exception:  # a bug in the engine: the parent logs it
        msg = ("error", traceback.format_exc())
    try:
        conn.send(msg)
    except MemoryError:  # the result itself did not fit
        conn.send(("memory", None))
    conn.close()


class _Standby:
    """One child started ahead of the next job (its start, imports included, is off the
    request's path), so a job waits only for the simulation itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: tuple[multiprocessing.process.BaseProcess,
                           multiprocessing.connection.Connection] | None = None

    @staticmethod
    def _start() -> tuple[multiprocessing.process.BaseProcess,
                          multiprocessing.connection.Connection]:
        here, there = _ctx.Pipe()
        proc = _ctx.Process(target=_child, args=(there,), daemon=True,
                            name="slabscope-simulation")
        proc.start()
        there.close()
        return proc, here

    def take(self) -> tuple[multiprocessing.process.BaseProcess,
                            multiprocessing.connection.Connection]:
        """A started child (the standby if there is one, else a new one); then a new standby
        is started in the background."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None or not ready[0].is_alive():
            ready = self._start()
        threading.Thread(target=self._refill, daemon=True).start()
        return ready

    def _refill(self) -> None:
        child = self._start()
        with self._lock:
            if self._ready is None:
                self._ready, child = child, None  # type: ignore[assignment]
        if child is not None:  # another refill got there first
            child[1].close()
            child[0].join()


_standby = _Standby()


def run(w: Workload, eras: list[str], seed: int, limits: Limits) -> SimulationResult:
    """simulate(w, eras, seed) in a child; raises SimulationLimitError or SimulationCrashed."""
    return run_measured(w, eras, seed, limits)[0]


def run_measured(w: Workload, eras: list[str], seed: int, limits: Limits
                 ) -> tuple[SimulationResult, int]:
    """run(), and the child's peak resident memory in bytes."""
    proc, conn = _standby.take()
    try:
        conn.send((w, eras, seed, limits))
        if not conn.poll(limits.wall_seconds):
            proc.kill()
            raise SimulationLimitError("wall", f"the simulation did not finish within "
                                               f"{limits.wall_seconds:g} s")
        try:
            status, value = conn.recv()
        except EOFError:
            status, value = "died", None
    except (BrokenPipeError, ConnectionResetError):  # it died before taking the job
        status, value = "died", None
    finally:
        conn.close()
        proc.join(5)
        if proc.exitcode is None:  # pragma: no cover - it sent its result or was killed
            proc.kill()
            proc.join()
    if status == "ok":
        result: tuple[SimulationResult, int] = value
        return result
    if status == "memory":
        raise SimulationLimitError("memory", "the simulation needed more than its memory "
                                             f"limit of {limits.memory_bytes:,} bytes")
    if status == "died" and proc.exitcode == -signal.SIGXCPU:
        raise SimulationLimitError("cpu", "the simulation used more than its CPU limit of "
                                          f"{limits.cpu_seconds} s")
    raise SimulationCrashed(f"the simulation process ended without a result (exit code "
                            f"{proc.exitcode}){': ' + value if status == 'error' else ''}")


class Gate:
    """At most `slots` simulations at once in this server process; the rest are refused."""

    def __init__(self, slots: int) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self.running = 0

    def try_enter(self) -> bool:
        """Take a slot if one is free (never waits)."""
        if not self._slots.acquire(blocking=False):
            return False
        with self._lock:
            self.running += 1
        return True

    def leave(self) -> None:
        """Give the slot back."""
        with self._lock:
            self.running -= 1
        self._slots.release()
