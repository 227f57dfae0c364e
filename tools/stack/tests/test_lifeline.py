"""Children die with their parent however it dies; the control folder carries requests both ways."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.control import ControlError, clear_requests, pending, send, serve_requests
from stack.procs import pid_alive, spawn

from .polling import wait_for

# A parent that starts a child through ``spawn`` from a thread that ends at once (as a pool or
# launcher thread would), reports the child's pid, then lives until it is killed.
PARENT = """
import subprocess, sys, threading
from stack.procs import spawn
started = []
worker = threading.Thread(target=lambda: started.append(
    spawn([sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.DEVNULL)))
worker.start()
worker.join()
print(started[0].pid, flush=True)
threading.Event().wait(600)
"""


@pytest.fixture
def parent_proc() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("mode", ["prctl", "watch"])
def test_a_child_outlives_the_thread_that_started_it_and_dies_with_a_killed_parent(
    mode: str, parent_proc: list[subprocess.Popen[bytes]]
) -> None:
    env = {**os.environ, "STACK_LIFELINE": mode}
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, env=env)
    parent_proc.append(parent)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        # The forking thread has ended: the child must still run (PDEATHSIG follows threads).
        wait_for(lambda: "time.sleep(600)" in Path(f"/proc/{child}/cmdline").read_text(), 60, "the exec")
        assert pid_alive(child)

        parent.kill()  # kill -9: no handler, no atexit, no cleanup of any kind
        parent.wait(timeout=30)

        wait_for(lambda: not pid_alive(child), 60, "the child to die with its parent")
    finally:
        if pid_alive(child):
            os.killpg(child, signal.SIGKILL)


def test_spawn_replaces_the_shim_so_the_pid_is_the_program_s(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with out.open("wb") as fh:
        proc = spawn([sys.executable, "-c", "import os; print(os.getpid())"], stdout=fh)
    assert proc.wait(timeout=60) == 0
    assert int(out.read_text()) == proc.pid


def test_a_missing_program_exits_127_with_its_name(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with out.open("wb") as fh:
        proc = spawn(["/no/such/program"], stdout=fh)
    assert proc.wait(timeout=60) == 127
    assert "/no/such/program" in out.read_text()


# --------------------------------------------------------------------------- control folder


class FakeStack:
    """Records what it was asked; fails on ``pause`` of anything not running."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.calls: list[tuple[str, str]] = []

    def pid(self, name: str) -> int | None:
        return 42

    def stop_service(self, name: str) -> None:
        self.calls.append(("stop", name))

    def start_service(self, name: str, timeout: float) -> None:
        self.calls.append(("start", name))

    def restart_service(self, name: str, timeout: float) -> None:
        self.calls.append(("restart", name))

    def pause(self, name: str) -> None:
        raise RuntimeError(f"{name} is not running")

    def resume(self, name: str) -> None:
        self.calls.append(("resume", name))


def _serve_until_answered(stack: FakeStack) -> threading.Thread:
    def loop() -> None:
        wait_for(lambda: bool(pending(stack.run_dir)), 60, "a request")
        serve_requests(stack)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop)
    thread.start()
    return thread


def test_a_request_is_carried_out_and_its_answer_returned(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path)
    runner = _serve_until_answered(stack)

    message = send(tmp_path, "stop", "room", timeout=30, runner_alive=lambda: True)

    runner.join(timeout=60)
    assert stack.calls == [("stop", "room")]
    assert message == "room stopped (was pid 42); it stays down until `stack start room`"
    assert list((tmp_path / "control").iterdir()) == []  # nothing left behind


def test_a_failed_request_raises_the_runner_s_reason(tmp_path: Path) -> None:
    runner = _serve_until_answered(FakeStack(tmp_path))

    with pytest.raises(ControlError, match="kafka is not running"):
        send(tmp_path, "pause", "kafka", timeout=30, runner_alive=lambda: True)
    runner.join(timeout=60)


def test_a_runner_that_died_is_noticed_instead_of_waited_for(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="exited before answering"):
        send(tmp_path, "start", "room", timeout=600, runner_alive=lambda: False)
    assert list((tmp_path / "control").iterdir()) == []


def test_requests_left_by_a_dead_runner_are_cleared_and_garbage_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "control"
    folder.mkdir()
    (folder / "1-a.request.json").write_text(json.dumps({"action": "stop", "name": "room", "timeout": 1}))
    (folder / "2-b.request.json").write_text("{not json")

    assert [r.name for r in pending(tmp_path)] == ["room"]
    assert not (folder / "2-b.request.json").exists()
    clear_requests(tmp_path)
    assert list(folder.iterdir()) == []
