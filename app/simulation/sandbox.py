"""Run a simulation in a child process with bounded memory, CPU and wall time.

The child is forked from a forkserver that has already imported the engine (numpy), so a run
starts in milliseconds; it sets its own RLIMIT_AS and RLIMIT_CPU, runs the engine, sends the
result back through a pipe and exits, which returns all its memory to the system. The parent
only waits (in a thread, off the event loop) and kills the child at the wall-clock limit.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import resource
import signal
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from app.simulation.engine import SimulationResult, simulate
from app.simulation.workload import Workload

_ctx = multiprocessing.get_context("forkserver")
# The main module too, once: else every child would import it again before it starts.
_ctx.set_forkserver_preload(["__main__", "app.simulation.sandbox"])


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


def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - every Linux has VmSize


def _child(conn: multiprocessing.connection.Connection, w: Workload, eras: list[str],
           seed: int, limits: Limits) -> None:
    start = _vm_size()
    resource.setrlimit(resource.RLIMIT_AS, (start + limits.memory_bytes,) * 2)
    # SIGXCPU at the soft limit (its default action ends the process); SIGKILL one second on.
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
    msg: tuple[str, Any]
    try:
        msg = ("ok", simulate(w, eras, seed=seed))
    except MemoryError:
        msg = ("memory", None)
    except Exception:  # a bug in the engine: the parent logs it
        msg = ("error", traceback.format_exc())
    try:
        conn.send(msg)
    except MemoryError:  # the result itself did not fit
        conn.send(("memory", None))
    conn.close()


def run(w: Workload, eras: list[str], seed: int, limits: Limits) -> SimulationResult:
    """simulate(w, eras, seed) in a child; raises SimulationLimitError or SimulationCrashed."""
    recv, send = _ctx.Pipe(duplex=False)
    proc = _ctx.Process(target=_child, args=(send, w, eras, seed, limits), daemon=True,
                        name="slabscope-simulation")
    proc.start()
    send.close()
    try:
        if not recv.poll(limits.wall_seconds):
            proc.kill()
            raise SimulationLimitError("wall", f"the simulation did not finish within "
                                               f"{limits.wall_seconds:g} s")
        try:
            status, value = recv.recv()
        except EOFError:
            status, value = "died", None
    finally:
        recv.close()
        proc.join(5)
        if proc.exitcode is None:  # pragma: no cover - it sent its result or was killed
            proc.kill()
            proc.join()
    if status == "ok":
        result: SimulationResult = value
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
