"""A real Apache Kafka broker (KRaft, broker and controller in one process) for the dev stack and
the test session: one node on its own, or one node of a ``stack.kafka_cluster.KafkaCluster``.

The broker is the official Apache Kafka distribution, run from its Maven Central jars
(``tools/kafka/pom.xml``, ``stack.kafka_jars``) or from ``$KAFKA_HOME/libs``; no Docker, no
Kafka look-alike. Topics: ``stack.kafka_admin``.

Typical use::

    libs = ensure_kafka_libs(run_dir)
    with KafkaBroker(run_dir, port=9092, libs_dir=libs) as broker:
        ensure_topics(broker.bootstrap_servers, ["reservations"])
        ...

``python -m stack.kafka`` runs a broker in the foreground until Ctrl-C (a debugging aid).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from stack.kafka_admin import DLQ_SUFFIX, broker_answers, ensure_topics
from stack.kafka_jars import (
    KafkaSetupError,
    Progress,
    default_run_dir,
    ensure_kafka_libs,
    java_executable,
    repo_root,
    say,
)
from stack.ports import HOST, port_open
from stack.procs import ProcessHandle, command_line, pid_alive, read_pid, run, signal_group

__all__ = [
    "DLQ_SUFFIX",
    "KafkaBroker",
    "KafkaSetupError",
    "KafkaStartError",
    "default_run_dir",
    "ensure_kafka_libs",
    "ensure_topics",
    "new_cluster_id",
    "repo_root",
]

log = logging.getLogger(__name__)

NODE_ID = 1
PROGRESS_EVERY_S = 5.0  # how often a starting broker is reported
LOG_TAIL_LINES = 40


class KafkaStartError(RuntimeError):
    """The broker did not come up (port taken, process exited, timed out); carries the log tail."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        """True when the broker was still starting at the deadline (more time may be all it needs)."""


def new_cluster_id() -> str:
    """A random KRaft cluster id, in the same form as ``kafka-storage random-uuid``."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own generator rejects ids starting with "-": they read like CLI options.
        if not cluster_id.startswith("-"):
            return cluster_id


# --------------------------------------------------------------------------- the broker


class KafkaBroker:
    """One Apache Kafka broker+controller (KRaft) on 127.0.0.1, run as a child process.

    State lives under ``state_dir`` (default ``<run_dir>/kafka``: ``server.properties``,
    ``broker.pid``, ``data/``); the broker's output goes to ``log_file`` (default
    ``<run_dir>/logs/kafka.log``). The data survives ``stop()``/``start()``; storage is
    formatted only the first time.

    Alone (``voters`` None) it is a single-voter quorum and topics get one replica. As one node
    of a cluster (``voters``: every node's id → controller port, ``cluster_id`` shared) the
    quorum is static and, with 3 or more nodes, topics default to 3 replicas with
    ``min.insync.replicas=2``: an ``acks=all`` write survives the loss of any one broker.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        port: int = 9092,
        controller_port: int | None = None,
        libs_dir: Path | None = None,
        log_file: Path | None = None,
        max_heap: str = "512m",
        min_heap: str = "256m",
        extra_properties: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        pid_file: Path | None = None,
        node_id: int = NODE_ID,
        voters: Mapping[int, int] | None = None,
        cluster_id: str | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.port = port
        self.controller_port = controller_port if controller_port is not None else port + 1
        self.node_id = node_id
        self.voters = dict(voters) if voters is not None else None
        """Node id → controller port of every voter of a cluster; None: a broker on its own."""
        if self.voters is not None and self.voters.get(node_id) != self.controller_port:
            raise ValueError(f"voters {self.voters} must map node {node_id} to {self.controller_port}")
        self.cluster_id = cluster_id
        """The KRaft cluster id to format with (random when None); all nodes of a cluster share it."""
        self.state_dir = Path(state_dir) if state_dir is not None else self.run_dir / "kafka"
        self.data_dir = self.state_dir / "data"
        self.properties_path = self.state_dir / "server.properties"
        self.pid_file = Path(pid_file) if pid_file is not None else self.state_dir / "broker.pid"
        """Holds the running broker's pid; rewritten on every start (leftovers are found by it)."""
        self.log_file = Path(log_file) if log_file is not None else self.run_dir / "logs" / "kafka.log"
        self.max_heap = max_heap
        self.min_heap = min_heap
        self.extra_properties = dict(extra_properties or {})
        self.last_start_seconds: float | None = None
        """Wall time of the last successful ``start()`` (format included), for reports."""
        self._libs_dir = Path(libs_dir) if libs_dir is not None else None
        self._progress = progress
        self._proc: ProcessHandle | None = None
        self._lock = threading.RLock()
        self._started_at = 0.0

    # -- public API ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``kafka`` for a broker on its own, ``kafka-<node id>`` for a node of a cluster."""
        return "kafka" if self.voters is None else f"kafka-{self.node_id}"

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:<port>"`` for Kafka clients."""
        return f"{HOST}:{self.port}"

    @property
    def is_running(self) -> bool:
        """True while the broker process started by this object is alive."""
        return self._proc is not None and self._proc.running

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, if any."""
        return self._proc.pid if self.is_running and self._proc is not None else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker and return once it answers metadata requests.

        Obtains the jars if needed (not counted in ``timeout``), stops a leftover broker of
        this same run folder (pid file), formats storage on first use, then polls until the
        broker is registered and unfenced. Raises ``KafkaStartError`` with the log tail if
        the process exits or the deadline passes.
        """
        with self._lock:
            if self.is_running:
                return
            deadline = self.launch(timeout)
            self.wait_ready(deadline, timeout)

    def launch(self, timeout: float = 60.0) -> float:
        """The first half of ``start()``: format if needed and spawn the JVM, without waiting.

        Returns the deadline (``time.monotonic()`` based) to hand to ``wait_ready``. A cluster
        launches every node before waiting for any: a node registers only once a majority of
        the controller quorum runs.
        """
        with self._lock:
            java = java_executable()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._stop_leftover()
            for port in (self.port, self.controller_port):
                if port_open(port):
                    raise KafkaStartError(
                        f"port {port} on {HOST} is already in use (another Kafka broker?); "
                        "stop it or choose other ports"
                    )
            libs = self._libs_dir or ensure_kafka_libs(self.run_dir, self._progress)
            self._started_at = time.monotonic()
            deadline = self._started_at + timeout
            self._write_properties(self.properties_path, self.data_dir)
            self._format_if_needed(java, libs, deadline)
            self._spawn(java, libs)
            return deadline

    def wait_ready(self, deadline: float, timeout: float) -> None:
        """The second half of ``start()``: poll until registered and unfenced, or stop the JVM
        and raise ``KafkaStartError`` with the log tail."""
        with self._lock:
            try:
                self._wait_ready(deadline, timeout)
            except BaseException:
                self._terminate(timeout=10)
                raise
            self.last_start_seconds = time.monotonic() - self._started_at
            say(
                self._progress,
                f"Kafka broker {self.name} ready on {self.bootstrap_servers} "
                f"(pid {self.pid}, {self.last_start_seconds:.1f} s)",
            )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the broker gracefully (SIGTERM to its process group), SIGKILL after ``timeout``."""
        with self._lock:
            self._terminate(timeout)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would (labs and recovery tests)."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.pid is not None and proc.running:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait_stopped(time.monotonic() + 10)
            self._forget()

    def restart(self, timeout: float = 60.0) -> None:
        """Stop (if running), then start again on the same data."""
        with self._lock:
            self.stop()
            self.start(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running else "stopped"
        return f"KafkaBroker({self.bootstrap_servers}, {state}, data={self.data_dir})"

    # -- internals ---------------------------------------------------------------------------

    def _quorum(self) -> dict[str, str]:
        if self.voters is None:
            # Kafka 4 dynamic quorum (KIP-853): bootstrap servers, not controller.quorum.voters,
            # which `format --standalone` refuses.
            return {"controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}"}
        # A cluster: a static quorum, every node formatted alike (no --standalone, no
        # directory ids to exchange first).
        voters = ",".join(f"{node}@{HOST}:{port}" for node, port in sorted(self.voters.items()))
        return {"controller.quorum.voters": voters}

    def _replication(self) -> dict[str, str]:
        nodes = len(self.voters) if self.voters is not None else 1
        replicas = str(min(nodes, 3))
        # With 3 replicas an acked write is on at least 2 brokers: one may die, nothing acked is
        # lost; with two down, acks=all producers wait (NOT_ENOUGH_REPLICAS) instead of losing.
        min_isr = "2" if nodes >= 3 else "1"
        return {
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
        }

    def _properties(self, log_dirs: Path) -> dict[str, str]:
        listeners = f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **self._quorum(),
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(log_dirs),
            "num.partitions": "3",
            "auto.create.topics.enable": "true",
            **self._replication(),
            # Consumers join a group at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(self.extra_properties)
        return props

    def _write_properties(self, path: Path, log_dirs: Path) -> None:
        lines = ["# Written by stack.kafka; regenerated on every start."]
        # Java .properties treats backslash as an escape character.
        lines += [f"{k}={v.replace(chr(92), chr(92) * 2)}" for k, v in self._properties(log_dirs).items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @staticmethod
    def _jvm_args(libs: Path) -> list[str]:
        """System properties and class path shared by the broker and the storage tool."""
        args = ["-Djava.awt.headless=true"]
        log_config = repo_root() / "tools" / "kafka" / "log4j2.properties"
        if log_config.is_file():
            args.append(f"-Dlog4j2.configurationFile={log_config}")
        return [*args, "-cp", f"{libs}{os.sep}*"]

    def _format_if_needed(self, java: str, libs: Path, deadline: float) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise KafkaSetupError(
                f"{self.data_dir} is not empty but holds no meta.properties, so it is not a "
                "formatted Kafka data folder; delete it to start with a fresh broker"
            )
        say(self._progress, f"formatting Kafka KRaft storage in {self.data_dir}")
        # Format into a staging folder, then rename: an interrupted format leaves no half state.
        staging = Path(tempfile.mkdtemp(prefix=".data-", dir=self.state_dir))
        staging_props = self.state_dir / ".format.properties"
        try:
            self._write_properties(staging_props, staging)
            cmd = [
                java,
                *self._jvm_args(libs),
                "kafka.tools.StorageTool",
                "format",
                *(["--standalone"] if self.voters is None else []),
                "--cluster-id",
                self.cluster_id or new_cluster_id(),
                "--config",
                str(staging_props),
            ]
            try:
                code, output = run(cmd, timeout=max(deadline - time.monotonic(), 5.0))
            except subprocess.TimeoutExpired as exc:
                raise KafkaStartError("formatting Kafka storage timed out", timed_out=True) from exc
            if code != 0:
                raise KafkaSetupError(f"formatting Kafka storage failed (exit {code}):\n{output}")
            log.debug("StorageTool: %s", output.strip())
            if self.data_dir.exists():
                self.data_dir.rmdir()  # empty (checked above); rename needs the name free
            staging.rename(self.data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            staging_props.unlink(missing_ok=True)

    def _spawn(self, java: str, libs: Path) -> None:
        cmd = [
            java,
            f"-Xms{self.min_heap}",
            f"-Xmx{self.max_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            *self._jvm_args(libs),
            "kafka.Kafka",
            str(self.properties_path),
        ]
        # Own session: Ctrl-C in the terminal reaches the runner, which stops the broker in
        # order, instead of killing the broker under the services. And it dies with its parent
        # however that dies (a killed test session leaks no JVM). The handle writes the pid file.
        self._proc = ProcessHandle(
            "kafka", cmd, log_path=self.log_file, pid_path=self.pid_file, cwd=self.state_dir
        )
        self._proc.start()
        atexit.register(self._stop_at_exit)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        proc = self._proc
        assert proc is not None
        began = next_report = time.monotonic()
        next_report += PROGRESS_EVERY_S
        while True:
            code = proc.returncode
            if code is not None:
                last = proc.tail(LOG_TAIL_LINES)
                hint = ""
                if "UnsupportedClassVersionError" in last:
                    hint = "\nKafka 4 needs Java 17 or newer."
                raise KafkaStartError(
                    f"Kafka broker exited with code {code} during start-up "
                    f"(log: {self.log_file}):\n{last}{hint}"
                )
            now = time.monotonic()
            remaining = deadline - now
            listening = port_open(self.port)
            if remaining <= 0:
                last = proc.tail(LOG_TAIL_LINES)
                raise KafkaStartError(
                    f"Kafka broker not ready on {self.bootstrap_servers} within {timeout:.0f} s "
                    f"(pid {proc.pid}, {'listening' if listening else 'not listening yet'}); "
                    f"last lines of {self.log_file}:\n{last}",
                    timed_out=True,
                )
            if now >= next_report:
                next_report = now + PROGRESS_EVERY_S
                say(self._progress, self._progress_line(now - began, listening))
            # A cheap TCP probe first: the admin client is only worth building once the
            # listener exists.
            if listening and broker_answers(self.bootstrap_servers, min(remaining, 5.0), self.node_id):
                return
            time.sleep(0.2)

    def _progress_line(self, waited: float, listening: bool) -> str:
        last = self._proc.tail(1) if self._proc is not None else ""
        if len(last) > 100:
            last = last[:97] + "..."
        state = "listening, waiting for the broker to register" if listening else "JVM starting"
        return f"Kafka {self.name}: {state} ({waited:.0f} s) · log: {last}"

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        pid = proc.pid if proc is not None else None
        # SIGTERM (and SIGCONT: a paused broker handles it only once resumed), SIGKILL at timeout.
        if proc is not None and proc.running and proc.stop(timeout):
            log.warning("Kafka broker (pid %s) ignored SIGTERM for %.0f s: killed", pid, timeout)
        self._forget()

    def _forget(self) -> None:
        self._proc = None
        self.pid_file.unlink(missing_ok=True)
        atexit.unregister(self._stop_at_exit)

    def _stop_at_exit(self) -> None:
        # Last resort when the owner forgot stop(): never leave an orphan JVM behind.
        with contextlib.suppress(Exception):
            self._terminate(timeout=10)

    def _stop_leftover(self) -> None:
        """Stop a broker that an earlier, crashed run of this same folder left behind."""
        pid = read_pid(self.pid_file)
        if pid is None:
            return
        command = (command_line(pid) or "") if pid_alive(pid) else ""
        if "kafka.Kafka" in command and str(self.properties_path) in command:
            say(self._progress, f"stopping a leftover Kafka broker (pid {pid}) from an earlier run")
            signal_group(pid, signal.SIGTERM)
            give_up = time.monotonic() + 20
            while pid_alive(pid) and time.monotonic() < give_up:
                time.sleep(0.1)
            if pid_alive(pid):
                signal_group(pid, signal.SIGKILL)
                while pid_alive(pid) and time.monotonic() < give_up + 5:
                    time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)


# --------------------------------------------------------------------------- foreground runner


def main(argv: list[str] | None = None) -> int:
    """Run a broker in the foreground until Ctrl-C / SIGTERM (``python -m stack.kafka``)."""
    parser = argparse.ArgumentParser(prog="python -m stack.kafka", description=main.__doc__)
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--controller-port", type=int, default=None)
    parser.add_argument("--run-dir", type=Path, default=None, help="default: <repo>/.run")
    parser.add_argument("--topics", nargs="*", default=[], help="topics to ensure (+ .dlq)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python 3 is chatty at INFO

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    run_dir = args.run_dir or default_run_dir()
    broker = KafkaBroker(run_dir, port=args.port, controller_port=args.controller_port)
    try:
        broker.start()
        if args.topics:
            ensure_topics(broker.bootstrap_servers, args.topics)
        print(f"Kafka on {broker.bootstrap_servers}; log: {broker.log_file}; Ctrl-C stops it")
        while not stop.wait(1.0):
            if not broker.is_running:
                print(f"Kafka broker exited; see {broker.log_file}", file=sys.stderr)
                return 1
        return 0
    except (KafkaSetupError, KafkaStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
