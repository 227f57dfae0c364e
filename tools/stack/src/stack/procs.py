"""Processes: starting children, knowing them again by pid file, stopping them.

``spawn`` starts a child that dies with this process however this process dies (a crash, a
``kill -9``, a CI timeout): through ``stack.lifeline``, forked from one long-lived thread (the
kernel ties ``PR_SET_PDEATHSIG`` to the forking *thread*, and a pool or launcher thread may end
long before the child). ``ProcessHandle`` is one supervised child (its log, its pid file, its
process group); ``owns_pid`` tells whether a pid file still names the process it recorded. The
rest are small, dependency-free checks: is a pid alive, what is a process's command line, the
last lines of a log. Used by the broker manager and the stack runner alike.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ProcessHandle",
    "command_line",
    "group_alive",
    "marker_for",
    "owns_pid",
    "pid_alive",
    "read_pid",
    "run",
    "signal_group",
    "spawn",
    "tail",
    "write_pid",
]

File = int | IO[Any] | None


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


# --------------------------------------------------------------------------- pid files and handles


def read_pid(path: Path) -> int | None:
    """The pid in a pid file (first line), or None if absent or unreadable."""
    try:
        return int(path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Plain "<pid>\n" so `kill $(cat .run/pids/room.pid)` works by hand.
    path.write_text(f"{pid}\n", encoding="utf-8")


def marker_for(name: str) -> tuple[str, ...]:
    """What a process's command line must contain for a pid file ``<name>.pid`` to be trusted.

    Pid files outlive their processes; checking the command line keeps ``stack down`` from
    signalling an unrelated process that later got the same pid.
    """
    base = name.split("-", 1)[0]
    if base == "kafka":
        return ("kafka.Kafka",)
    if base == "smtp":
        return ("stack.smtp_sink",)
    if base == "zipkin":
        return ("zipkin-server", "-jar")
    if base == "postgres":
        return ("postgres", " -D ")
    if base == "stack":
        return ("stack", " up")
    return (f"{base}_service",)


def _started_after(pid: int, moment: float) -> bool:
    """True if ``pid`` provably started after ``moment`` (epoch seconds); False when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22: start time after boot
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    # btime is whole seconds: allow slack so a process started just before its pid file counts.
    return boot + ticks / os.sysconf("SC_CLK_TCK") > moment + 2.0


def owns_pid(pid: int, name: str, pid_file: Path | None = None) -> bool:
    """True if ``pid`` is alive and is the ``name`` process a pid file of this stack recorded.

    Checks the command line (see ``marker_for``) and, given the pid file, that the process is
    not younger than the file (a reused pid).
    """
    if not pid_alive(pid):
        return False
    if pid_file is not None:
        with contextlib.suppress(OSError):
            if _started_after(pid, pid_file.stat().st_mtime):
                return False
    command = command_line(pid)
    return command is None or all(part in command for part in marker_for(name))


class ProcessHandle:
    """One child process in its own process group, output appended to a log, pid in a file."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        pid_path: Path | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.pid_path = pid_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.log_offset = 0
        """Where this run's output starts in the log (earlier runs append to the same file)."""

    @property
    def pid(self) -> int | None:
        """The pid (also the process-group id) of the last start, while known."""
        return self.popen.pid if self.popen is not None else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once the process ended, else None (also drops the stale pid file)."""
        code = self.popen.poll() if self.popen is not None else None
        if code is not None and self.pid_path is not None:
            self.pid_path.unlink(missing_ok=True)
        return code

    def start(self) -> None:
        """Spawn the process (in a new session) with output appended to ``log_path``."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.log_offset = out.tell()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"--- {stamp} stack: {' '.join(self.command)}\n".encode())
            out.flush()
            # Its own session, and it dies with this process however this one dies.
            self.popen = spawn(self.command, stdout=out, env=self.env, cwd=self.cwd)
        self.started_at = time.monotonic()
        if self.pid_path is not None:
            write_pid(self.pid_path, self.popen.pid)

    def tail(self, lines: int = 25) -> str:
        """The last lines this run of the process wrote."""
        return tail(self.log_path, lines, self.log_offset)

    def send_term(self) -> None:
        """Ask the whole process group to stop (SIGTERM) without waiting."""
        if self.popen is not None and self.popen.poll() is None:
            signal_group(self.popen.pid, signal.SIGTERM)
            signal_group(self.popen.pid, signal.SIGCONT)  # a paused process handles it once resumed

    def wait_stopped(self, deadline: float) -> bool:
        """Wait until the group is gone; SIGKILL it at ``deadline``. True if SIGKILL was needed."""
        popen = self.popen
        if popen is None:
            return False
        killed = False
        while True:
            popen.poll()  # reaps the leader, so a zombie does not count as alive
            if popen.returncode is not None and not group_alive(popen.pid):
                break
            if time.monotonic() >= deadline:
                if killed:
                    break  # unkillable (uninterruptible sleep): give up rather than hang
                signal_group(popen.pid, signal.SIGKILL)
                killed = True
                deadline = time.monotonic() + 5.0
            time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=1)
        if self.pid_path is not None:
            self.pid_path.unlink(missing_ok=True)
        return killed

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. True if SIGKILL was needed."""
        self.send_term()
        return self.wait_stopped(time.monotonic() + timeout)
