"""The CLI's error cases (issue 11): one line and a status, never a traceback; `make run`'s
Ctrl-C is a clean end; migrating prints no Alembic plugin lines."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _one_line(r: subprocess.CompletedProcess[str], status: int) -> str:
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def _wait_listening(port: int, seconds: float) -> None:
    """Until something accepts connections on 127.0.0.1:port (the dashboard is up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("the dashboard never listened")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_bad_option_or_variable_is_one_line(tmp_path: Path) -> None:
    assert _one_line(_cli("serve", "--port", "99999"), 2) == (
        "slabscope: --port: Input should be less than or equal to 65535 (got 99999)")
    got = _one_line(_cli("collect", "--once", env={
        "SLABSCOPE_COLLECT_INTERVAL_SECONDS": "abc"}), 2)
    assert got.startswith("slabscope: SLABSCOPE_COLLECT_INTERVAL_SECONDS: Input should be a "
                          "valid number") and got.endswith("(got 'abc')")
    assert _one_line(_cli("serve", "--workers", "0"), 2) == \
        "slabscope: --workers must be 1 to 64, not 0"


def test_a_taken_port_is_one_line_with_a_hint(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line(_cli("serve", "--no-migrate", "--port", str(port), "--database",
                              f"sqlite:///{tmp_path / 'x.db'}"), 2)
    assert line.startswith(f"slabscope: cannot listen on 127.0.0.1:{port}: Address already "
                           "in use") and "--port" in line


def test_collect_once_with_nothing_readable_fails(tmp_path: Path) -> None:
    for fmt in ("json", "table"):
        r = _cli("collect", "--once", "--format", fmt, "--proc-root", str(tmp_path / "no"),
                 "--sys-root", str(tmp_path / "nosys"))
        assert r.returncode == 1, (fmt, r.stderr)
        assert "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith(
            f"slabscope: no source could be read under --proc-root {tmp_path / 'no'}")
        if fmt == "table":  # partial data reads as unknown, not "None"
            assert "None" not in r.stdout
            assert "memcgs: unknown total, unknown visible, unknown dying" in r.stdout


def test_migrate_prints_no_alembic_plugin_lines(tmp_path: Path) -> None:
    r = _cli("migrate", "--database", f"sqlite:///{tmp_path / 'm.db'}")
    assert r.returncode == 0, r.stderr
    assert "setup plugin" not in r.stderr + r.stdout
    assert "is at revision head" in r.stdout + r.stderr


def test_ctrl_c_ends_make_run_cleanly(tmp_path: Path) -> None:
    # What `make run` runs, with Ctrl-C sent to its whole process group as a terminal does.
    port = _free_port()
    env = {**os.environ, "SLABSCOPE_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
           "SLABSCOPE_WEB_PORT": str(port), "SLABSCOPE_COLLECT_INTERVAL_SECONDS": "1",
           "SLABSCOPE_SPOOL_DIR": str(tmp_path / "spool")}
    p = subprocess.Popen([sys.executable, "-m", "app.run"], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        _wait_listening(port, 90)
        time.sleep(2)  # a collector tick or two
        os.killpg(p.pid, signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 0, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert f"open http://127.0.0.1:{port}" in out


def test_make_run_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "app.run"], cwd=ROOT, text=True,
                           capture_output=True, timeout=60,
                           env={**os.environ, "SLABSCOPE_WEB_PORT": str(port),
                                "SLABSCOPE_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}"})
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr
    assert f"make run PORT={port + 1}" in r.stderr
    assert "open http" not in r.stdout


def test_ctrl_c_at_a_terminal_ends_make_run_with_status_0(tmp_path: Path) -> None:
    # A real terminal (a pty) and a real `make run`: Ctrl-C is the byte 0x03 typed at it.
    import pty
    port = _free_port()
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session of its own with the pty as its terminal
        os.chdir(ROOT)
        os.execvp("make", ["make", "run", f"PORT={port}", f"DB=sqlite:///{tmp_path / 'p.db'}",
                           "INTERVAL=1"])
    out = b""
    try:
        _wait_listening(port, 120)
        time.sleep(2)
        os.write(fd, b"\x03")
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the terminal's last user is gone
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        os.close(fd)
    text = out.decode(errors="replace")
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, text[-2000:])
    assert "Interrupt" not in text and "Error" not in text and "Traceback" not in text, text


def test_help_is_plain_text() -> None:
    r = _cli("serve", "--help")
    assert r.returncode == 0
    assert "<bool>" not in r.stdout and "╭" not in r.stdout
    assert "--migrate / --no-migrate" in r.stdout and "--port <int>" in r.stdout
