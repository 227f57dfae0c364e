"""A run folder's records, and stopping what they name: ``stack down`` and leftovers.

A running stack leaves in its run folder the runner's pid (``stack.pid``), its state (ports,
URLs, process states: ``stack.json``) and one pid file per child (``pids/<name>.pid``). ``down``
signals the runner and waits; ``cleanup_leftovers`` stops what a killed runner left behind.
Every pid is checked against its command line first (``owns_pid``), so a reused pid is never
signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from stack.console import Say, echo
from stack.errors import StackError
from stack.procs import owns_pid, pid_alive, read_pid, write_pid

__all__ = [
    "PIDS_DIR",
    "STACK_PID_FILE",
    "STATE_FILE",
    "cleanup_leftovers",
    "down",
    "read_state",
    "write_runner_pid",
]

STACK_PID_FILE = "stack.pid"
STATE_FILE = "stack.json"
PIDS_DIR = "pids"


def _pid_files(run_dir: Path) -> list[tuple[str, Path]]:
    found = [(p.stem, p) for p in sorted((run_dir / PIDS_DIR).glob("*.pid"))]
    broker_pid = run_dir / "kafka" / "broker.pid"
    if broker_pid.exists():
        found.append(("kafka", broker_pid))
    return found


def cleanup_leftovers(run_dir: Path, say: Say | None = None, timeout: float = 10.0) -> list[str]:
    """Stop processes that pid files under ``run_dir`` name but no runner owns any more.

    Each pid is checked against its command line first, so a reused pid is never signalled.
    Returns a description of each process stopped; removes every pid file it read.
    """
    stopped: list[str] = []
    targets: list[tuple[str, int, Path]] = []
    for name, path in _pid_files(run_dir):
        pid = read_pid(path)
        if pid is not None and owns_pid(pid, name, path):
            targets.append((name, pid, path))
        else:
            path.unlink(missing_ok=True)
    for name, pid, _ in targets:
        if say is not None:
            say(f"stopping leftover {name} (pid {pid})")
        _terminate_foreign(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, pid, path in targets:
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            _terminate_foreign(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
        path.unlink(missing_ok=True)
        stopped.append(f"{name} (pid {pid})")
    return stopped


def _terminate_foreign(pid: int, sig: signal.Signals) -> None:
    # Our children lead their own process group; signal the group so helpers die too.
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if leads_group:
            os.killpg(pid, sig)
            os.killpg(pid, signal.SIGCONT)  # a paused leftover handles SIGTERM only once resumed
        else:
            os.kill(pid, sig)
            os.kill(pid, signal.SIGCONT)


def down(run_dir: Path, say: Say = echo, timeout: float = 60.0) -> bool:
    """Stop the stack running from ``run_dir`` (signal its runner and wait), then clean up.

    Returns True if anything was running. Safe to call when nothing runs.
    """
    pid_file = run_dir / STACK_PID_FILE
    runner = read_pid(pid_file)
    did_something = False
    if runner is not None and runner != os.getpid() and owns_pid(runner, "stack", pid_file):
        did_something = True
        say(f"stopping the stack (runner pid {runner}) …")
        os.kill(runner, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(runner) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(runner):
            say(f"the runner did not exit within {timeout:.0f} s: killing it and its children")
            with contextlib.suppress(ProcessLookupError):
                os.kill(runner, signal.SIGKILL)
            while pid_alive(runner) and time.monotonic() < deadline + 5:
                time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    leftovers = cleanup_leftovers(run_dir, say=say)
    if leftovers:
        did_something = True
        say(f"stopped leftover processes: {', '.join(leftovers)}")
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    if did_something:
        say("stack stopped")
    else:
        say(f"nothing is running (no stack in {run_dir})")
    return did_something


def write_runner_pid(run_dir: Path) -> Path:
    """Write ``<run_dir>/stack.pid`` with this process's pid; refuse if another runner is alive."""
    path = run_dir / STACK_PID_FILE
    other = read_pid(path)
    if other is not None and other != os.getpid() and owns_pid(other, "stack", path):
        raise StackError(
            f"a stack is already running from {run_dir} (runner pid {other}); "
            "stop it with `make down` / `uv run stack down`"
        )
    write_pid(path, os.getpid())
    return path


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The ports and URLs a running stack wrote at start, if any."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
