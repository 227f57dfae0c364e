"""Nothing the stack or a test fixture starts outlives its parent, however the parent dies.

Each test kills the parent with SIGKILL (no handler, no atexit, no cleanup: a CI timeout or an
OOM kill), then polls until no process of the run is left and none of its ports listens.
Linux: processes are found through /proc (their command line or their ``RUN_DIR``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.kafka import default_run_dir, ensure_kafka_libs, repo_root
from stack.ports import free_port_block, port_in_use
from stack.procs import pid_alive, read_pid, spawn
from stack.services import MANAGEMENT_OFFSET, spec
from stack.shutdown import read_state

from .polling import wait_for

START_TIMEOUT_S = 300  # a cold JVM and two services on a loaded 2-core machine


def _processes_of(run_dir: Path) -> list[int]:
    """Live processes (not zombies) whose command line or ``RUN_DIR`` names ``run_dir``."""
    needle = str(run_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (needle in cmdline or b"RUN_DIR=" + needle + b"\0" in environ) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def leftovers() -> Iterator[list[Path]]:
    """Run folders a test used; anything of theirs still alive afterwards is killed (and fails the test)."""
    folders: list[Path] = []
    yield folders
    for folder in folders:
        _kill_all(_processes_of(folder))


def _stack(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", "--run-dir", str(run_dir), *args],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


@pytest.mark.kafka
@pytest.mark.timeout(900)
def test_stack_control_then_a_killed_runner_leaves_no_process_and_no_port(
    tmp_path: Path, leftovers: list[Path]
) -> None:
    run_dir = tmp_path / "run"
    leftovers.append(run_dir)
    base = free_port_block(9, mirrors=(MANAGEMENT_OFFSET,))
    # gateway, auth, Kafka and its controller, the SMTP sink, and the two management ports
    ports = [base, base + 1, base + 6, base + 7, base + 8]
    ports += [spec(name).management_port(base) for name in ("gateway", "auth")]
    ensure_kafka_libs(default_run_dir())
    log = (tmp_path / "runner.log").open("wb")
    runner = spawn(
        [
            sys.executable, "-m", "stack", "--run-dir", str(run_dir), "up",
            "--base-port", str(base), "--kafka-port", str(base + 6), "--smtp-port", str(base + 8),
            "--services", "gateway", "auth", "--timeout", str(START_TIMEOUT_S),
        ],
        stdout=log,
        env={**os.environ, "KAFKA_HOME": str(ensure_kafka_libs(default_run_dir()).parent)},
    )  # fmt: skip
    try:

        def green() -> bool:
            output = (tmp_path / "runner.log").read_bytes()
            assert runner.poll() is None, f"the runner exited: {output[-3000:].decode(errors='replace')}"
            return b"All green" in output

        wait_for(green, START_TIMEOUT_S, "the stack to be green")

        # Stop keeps a service down; start brings it back.
        done = _stack(run_dir, "stop", "auth")
        assert done.returncode == 0, done.stderr
        assert "stays down" in done.stdout
        assert not port_in_use(base + 1)
        assert "stopped (`stack start auth`)" in _stack(run_dir, "status").stdout
        assert _stack(run_dir, "start", "auth").returncode == 0
        assert port_in_use(base + 1)

        # Pause freezes the process group (state T), resume continues it.
        gateway = read_pid(run_dir / "pids" / "gateway.pid")
        assert gateway is not None
        assert _stack(run_dir, "pause", "gateway").returncode == 0
        assert Path(f"/proc/{gateway}/stat").read_text().rpartition(")")[2].split()[0] == "T"
        assert "paused (`stack resume gateway`)" in _stack(run_dir, "status").stdout
        assert _stack(run_dir, "resume", "gateway").returncode == 0
        assert Path(f"/proc/{gateway}/stat").read_text().rpartition(")")[2].split()[0] != "T"

        # A restarted broker is tracked: its pid file and the state name the new pid.
        old_kafka = read_pid(run_dir / "pids" / "kafka.pid")
        done = _stack(run_dir, "restart", "kafka")
        assert done.returncode == 0, done.stderr
        new_kafka = read_pid(run_dir / "pids" / "kafka.pid")
        assert new_kafka not in (None, old_kafka)
        state = read_state(run_dir)
        assert state is not None
        assert state["processes"]["kafka"] == {"pid": new_kafka, "state": "running"}

        refused = _stack(run_dir, "pause", "billing")
        assert refused.returncode == 1
        assert "unknown process 'billing'" in refused.stderr

        assert all(port_in_use(p) for p in ports), [p for p in ports if not port_in_use(p)]
        children = _processes_of(run_dir)
        assert new_kafka in children
        assert len(children) >= 4  # kafka, smtp, gateway, auth

        runner.kill()  # kill -9 the runner: nothing may be left
        runner.wait(timeout=60)

        wait_for(lambda: not _processes_of(run_dir), 120, "every process of the run to die")
        wait_for(lambda: not any(port_in_use(p) for p in ports), 120, "every port of the run to close")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=60)
        log.close()


@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_a_killed_pytest_session_leaves_no_kafka_broker(tmp_path: Path, leftovers: list[Path]) -> None:
    report = tmp_path / "broker.json"
    basetemp = tmp_path / "session"  # the broker's folder is under it: how its processes are found
    leftovers.append(basetemp)
    ensure_kafka_libs(default_run_dir())
    log = (tmp_path / "pytest.log").open("wb")
    session = spawn(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(basetemp),
            "-o", "timeout=900", str(Path(__file__).with_name("holds_a_broker.py")),
        ],
        stdout=log,
        env={**os.environ, "HOLDS_A_BROKER_REPORT": str(report)},
        cwd=repo_root(),
    )  # fmt: skip
    try:
        wait_for(report.exists, START_TIMEOUT_S, "the session's broker")
        broker = json.loads(report.read_text())
        assert pid_alive(broker["pid"])
        assert broker["pid"] in _processes_of(basetemp)

        session.kill()  # kill -9 pytest: its fixtures' finalizers never run
        session.wait(timeout=60)

        wait_for(lambda: not pid_alive(broker["pid"]), 120, "the broker to die with the session")
        wait_for(lambda: not _processes_of(basetemp), 120, "every process of the session to die")
        wait_for(lambda: not any(port_in_use(p) for p in broker["ports"]), 120, "the broker's ports to close")
    finally:
        if session.poll() is None:
            session.kill()
            session.wait(timeout=60)
        log.close()
