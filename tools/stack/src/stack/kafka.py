"""A real Apache Kafka broker (KRaft, single node) for the dev stack and the test session.

The broker is the official Apache Kafka distribution, run from its Maven Central jars
(``tools/kafka/pom.xml``) or from ``$KAFKA_HOME/libs``; no Docker, no Kafka look-alike.

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
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient

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

Progress = Callable[[str], None]
"""Receives one human-readable progress line (e.g. the runner prints it)."""

DLQ_SUFFIX = ".dlq"
NODE_ID = 1
PROGRESS_EVERY_S = 5.0  # how often a starting broker is reported
LOG_TAIL_LINES = 40
_BROKER_JAR_GLOB = "kafka_2.13-*.jar"
_INSTALL_HINT = (
    "Install Java 17+ and Maven (e.g. `apt-get install openjdk-17-jre-headless maven`, "
    "`brew install openjdk@17 maven`), or set KAFKA_HOME to an unpacked Apache Kafka 4.x "
    "distribution."
)


class KafkaSetupError(RuntimeError):
    """Kafka cannot be obtained or prepared (no Java/Maven, failed download, bad data dir)."""


class KafkaStartError(RuntimeError):
    """The broker did not come up (port taken, process exited, timed out); carries the log tail."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out
        """True when the broker was still starting at the deadline (more time may be all it needs)."""


# --------------------------------------------------------------------------- paths and helpers


def repo_root() -> Path:
    """The monorepo root: the nearest folder holding ``tools/kafka/pom.xml``."""
    marker = Path("tools") / "kafka" / "pom.xml"
    here = Path(__file__).resolve()
    for start in (here.parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / marker).is_file():
                return folder
    raise KafkaSetupError(f"cannot find the repository root (no {marker} above {here})")


def default_run_dir() -> Path:
    """The git-ignored run folder of the repository (``<repo>/.run``)."""
    return repo_root() / ".run"


def new_cluster_id() -> str:
    """A random KRaft cluster id, in the same form as ``kafka-storage random-uuid``."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own generator rejects ids starting with "-": they read like CLI options.
        if not cluster_id.startswith("-"):
            return cluster_id


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
    else:
        log.info(message)


def _java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise KafkaSetupError(f"`java` was not found on PATH. {_INSTALL_HINT}")
    return found


def _pom_kafka_version(pom: Path) -> str | None:
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text("utf-8"))
    return match.group(1) if match else None


def _has_broker_jar(libs: Path, version: str | None) -> bool:
    if version is not None:
        return (libs / f"kafka_2.13-{version}.jar").is_file()
    return libs.is_dir() and any(libs.glob(_BROKER_JAR_GLOB))


# --------------------------------------------------------------------------- obtaining the jars


def ensure_kafka_libs(run_dir: Path, progress: Progress | None = None) -> Path:
    """Return a folder of Apache Kafka broker jars, obtaining them once if needed.

    Order: ``$KAFKA_HOME/libs`` if ``KAFKA_HOME`` is set; else the cache
    ``<run_dir>/kafka/libs`` if it holds the broker jar of the version pinned in
    ``tools/kafka/pom.xml``; else Maven copies the jars into a temporary folder that is then
    renamed into place, so an interrupted download never leaves a half-filled cache.
    """
    kafka_home = os.environ.get("KAFKA_HOME")
    if kafka_home:
        libs = Path(kafka_home).expanduser() / "libs"
        if not _has_broker_jar(libs, None):
            raise KafkaSetupError(
                f"KAFKA_HOME={kafka_home} has no {_BROKER_JAR_GLOB} in libs/; point it at an "
                "unpacked Apache Kafka 4.x distribution or unset it to download via Maven."
            )
        return libs

    pom = repo_root() / "tools" / "kafka" / "pom.xml"
    version = _pom_kafka_version(pom)
    target = Path(run_dir) / "kafka" / "libs"
    if _has_broker_jar(target, version):
        return target

    mvn = shutil.which("mvn")
    _java_executable()  # Maven needs Java too; fail with the same clear hint
    if mvn is None:
        raise KafkaSetupError(f"`mvn` (Apache Maven) was not found on PATH. {_INSTALL_HINT}")

    _say(progress, f"obtaining Apache Kafka {version or ''} jars via Maven… (first run only)")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".libs-", dir=target.parent))
    started = time.monotonic()
    try:
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
        ]
        try:
            code, output = run(cmd, timeout=1800)
        except subprocess.TimeoutExpired as exc:
            raise KafkaSetupError("Maven did not finish obtaining the Kafka jars in 30 min") from exc
        if code != 0 or not _has_broker_jar(staging, version):
            last = "\n".join(output.splitlines()[-30:])
            raise KafkaSetupError(f"Maven could not obtain the Kafka jars (exit {code}):\n{last}")
        _swap_into_place(staging, target, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename succeeded
    _say(progress, f"Kafka jars ready in {target} ({time.monotonic() - started:.1f} s)")
    return target


def _swap_into_place(staging: Path, target: Path, version: str | None) -> None:
    old: Path | None = None
    if target.exists():
        if _has_broker_jar(target, version):
            return  # a concurrent run (another test worker, `make up`) finished first
        old = target.with_name(f".libs-old-{uuid.uuid4().hex}")
        target.rename(old)  # stale version or a folder left by hand
    try:
        staging.rename(target)
    except OSError:
        if not _has_broker_jar(target, version):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- admin client


class _AdminClient(KafkaAdminClient):  # type: ignore[misc]
    """KafkaAdminClient that does not leak its IO thread when bootstrapping fails.

    kafka-python 3.0 starts a daemon IO thread before bootstrapping and never stops it when
    the constructor raises; polling a starting broker would pile those threads up.
    """

    def __init__(self, **configs: Any) -> None:
        try:
            super().__init__(**configs)
        except BaseException:
            client = getattr(self, "_client", None)
            net = getattr(self, "_net", None)
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
            if net is not None:
                with contextlib.suppress(Exception):
                    net.stop()
            raise


@contextlib.contextmanager
def _admin(bootstrap: str, timeout: float) -> Iterator[Any]:
    timeout_ms = max(int(timeout * 1000), 500)
    admin = _AdminClient(
        bootstrap_servers=bootstrap,
        client_id="stack-admin",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        yield admin
    finally:
        admin.close()


def _broker_answers(bootstrap: str, timeout: float) -> bool:
    """True once the broker serves metadata and is registered and unfenced."""
    try:
        with _admin(bootstrap, timeout) as admin:
            cluster = admin.describe_cluster()
    except (kafka_errors.KafkaError, OSError) as exc:
        log.debug("broker not ready yet: %s", exc)
        return False
    return any(
        b.get("broker_id") == NODE_ID and not b.get("is_fenced", False) for b in cluster.get("brokers", [])
    )


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 3,
    with_dlq: bool = True,
    timeout: float = 30.0,
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics (and each one's ``<topic>.dlq`` twin) if missing; idempotent.

    Existing topics are left as they are. Returns every ensured topic name once the broker's
    metadata shows all of them with a leader for every partition. Retriable errors (broker
    still starting, leader moving) are retried until ``timeout``.
    """
    names: list[str] = []
    for topic in topics:
        wanted = [topic]
        if with_dlq and not topic.endswith(DLQ_SUFFIX):
            wanted.append(topic + DLQ_SUFFIX)
        names.extend(n for n in wanted if n not in names)
    if not names:
        return []

    deadline = time.monotonic() + timeout
    spec = {n: {"num_partitions": partitions, "replication_factor": replication_factor} for n in names}
    while True:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise kafka_errors.KafkaTimeoutError("no time left")
            with _admin(bootstrap, min(remaining, 10.0)) as admin:
                result = admin.create_topics(
                    spec, timeout_ms=int(min(remaining, 10.0) * 1000), raise_errors=False
                )
                for entry in result.get("topics", []):
                    error = kafka_errors.for_code(entry.get("error_code", 0))
                    if error in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                        continue
                    raise error(f"{entry.get('name')}: {entry.get('error_message')}")
                remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
                admin.wait_for_topics(names, timeout_ms=remaining_ms)
                return names
        except (kafka_errors.KafkaError, OSError) as exc:
            retriable = isinstance(exc, OSError) or getattr(exc, "retriable", False)
            if not retriable:
                raise
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"topics {names} not ready on {bootstrap} within {timeout:.0f} s: {exc}"
                ) from exc
            log.debug("ensure_topics retrying: %s", exc)
            time.sleep(0.2)


# --------------------------------------------------------------------------- the broker


class KafkaBroker:
    """One Apache Kafka broker+controller (KRaft) on 127.0.0.1, run as a child process.

    State lives under ``<run_dir>/kafka`` (``server.properties``, ``broker.pid``, ``data/``);
    the broker's output goes to ``log_file`` (default ``<run_dir>/logs/kafka.log``). The data
    survives ``stop()``/``start()``; storage is formatted only the first time.
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
    ) -> None:
        self.run_dir = Path(run_dir)
        self.port = port
        self.controller_port = controller_port if controller_port is not None else port + 1
        self.state_dir = self.run_dir / "kafka"
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

    # -- public API ------------------------------------------------------------------------

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
            java = _java_executable()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._stop_leftover()
            for port in (self.port, self.controller_port):
                if port_open(port):
                    raise KafkaStartError(
                        f"port {port} on {HOST} is already in use (another Kafka broker?); "
                        "stop it or choose other ports"
                    )
            libs = self._libs_dir or ensure_kafka_libs(self.run_dir, self._progress)
            started = time.monotonic()
            deadline = started + timeout
            self._write_properties(self.properties_path, self.data_dir)
            self._format_if_needed(java, libs, deadline)
            self._spawn(java, libs)
            try:
                self._wait_ready(deadline, timeout)
            except BaseException:
                self._terminate(timeout=10)
                raise
            self.last_start_seconds = time.monotonic() - started
            _say(
                self._progress,
                f"Kafka broker ready on {self.bootstrap_servers} "
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

    def _properties(self, log_dirs: Path) -> dict[str, str]:
        listeners = f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            # Kafka 4 dynamic quorum (KIP-853): bootstrap servers, not controller.quorum.voters,
            # which `format --standalone` refuses.
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(log_dirs),
            "num.partitions": "3",
            "auto.create.topics.enable": "true",
            # A single node cannot hold more than one replica of the internal topics.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
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
        _say(self._progress, f"formatting Kafka KRaft storage in {self.data_dir}")
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
                "--standalone",
                "--cluster-id",
                new_cluster_id(),
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
                _say(self._progress, self._progress_line(now - began, listening))
            # A cheap TCP probe first: the admin client is only worth building once the
            # listener exists.
            if listening and _broker_answers(self.bootstrap_servers, min(remaining, 5.0)):
                return
            time.sleep(0.2)

    def _progress_line(self, waited: float, listening: bool) -> str:
        last = self._proc.tail(1) if self._proc is not None else ""
        if len(last) > 100:
            last = last[:97] + "..."
        state = "listening, waiting for the broker to register" if listening else "JVM starting"
        return f"Kafka: {state} ({waited:.0f} s) · log: {last}"

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
            _say(self._progress, f"stopping a leftover Kafka broker (pid {pid}) from an earlier run")
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
