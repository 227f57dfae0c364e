"""Process helpers shared by the broker manager and the stack runner.

``spawn`` starts a child that dies with this process however this process dies (a crash, a
``kill -9``, a CI timeout): through ``stack.lifeline``, forked from one long-lived thread (the
kernel ties ``PR_SET_PDEATHSIG`` to the forking *thread*, and a pool or launcher thread may end
long before the child). The rest are small, dependency-free checks: is a pid alive, is a port
open, what is a process's command line, the last lines of a log.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

__all__ = [
    "HOST",
    "command_line",
    "group_alive",
    "pid_alive",
    "port_open",
    "run",
    "signal_group",
    "spawn",
    "tail",
]

HOST = "127.0.0.1"

File = int | IO[Any] | None


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def command_line(pid: int) -> str | None:
    """The command line of ``pid``: ``""`` if there is no such process, None if unknowable."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return ""  # /proc exists, the pid does not
    except OSError:
        return ""
    try:  # no /proc (macOS)
        done = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def tail(path: Path, lines: int = 25, start: int = 0) -> str:
    """The last ``lines`` lines of a log file after byte ``start`` (or why there are none)."""
    try:
        with path.open("rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            fh.seek(max(end - 64_000, start, 0))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return f"({path} does not exist)"
    picked = text.splitlines()[-lines:]
    return "\n".join(picked) if picked else f"({path} is empty)"


# --------------------------------------------------------------------------- spawning


class _Spawner:
    """The one thread that forks every child of this process; it lives as long as the process."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, job: Callable[[], Any]) -> Any:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="stack-spawner", daemon=True)
                self._thread.start()
        if threading.current_thread() is self._thread:
            return job()
        done: Future[Any] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)


_SPAWNER = _Spawner()


def spawn(
    command: Sequence[str],
    *,
    stdout: File,
    stderr: File = subprocess.STDOUT,
    stdin: File = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    new_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``command`` so that it dies with this process (see ``stack.lifeline``).

    ``new_session`` (the default) puts it in its own session and process group: a Ctrl-C in the
    terminal reaches only this process, which stops its children in order.
    """
    guarded = [sys.executable, "-m", "stack.lifeline", str(os.getpid()), *command]
    child_env = None if env is None else dict(env)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            guarded,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=child_env,
            cwd=cwd,
            start_new_session=new_session,
        )

    popen: subprocess.Popen[bytes] = _SPAWNER.call(start)
    return popen


def run(command: Sequence[str], *, timeout: float, cwd: Path | None = None) -> tuple[int, str]:
    """Run ``command`` to its end (killed at ``timeout``: ``TimeoutExpired``); its exit code and output."""
    proc = spawn(command, stdout=subprocess.PIPE, cwd=cwd)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, output.decode("utf-8", errors="replace")
