"""The dev stack: Kafka, the SMTP sink and the six services as supervised child processes.

``Stack`` is used by ``stack up`` and by end-to-end tests alike::

    with Stack(tmp_path, base_port=18000, kafka_port=19092, smtp_port=11025) as stack:
        httpx.get(stack.url("gateway") + "/health/ready")
        stack.stop_service("room")  # also "kafka" and "smtp"; stays down until started
        stack.start_service("room")
        stack.pause("inventory")  # SIGSTOP: a hung process; resume("inventory") continues it

Every child runs in its own session (so its own process group): a Ctrl-C in the terminal
reaches only the runner, which then stops the services, the SMTP sink and Kafka in that order.
Every child also dies with the process that started it, however that one dies
(``stack.procs.spawn``). Pid files under ``<run_dir>/pids`` (rewritten on every restart) let
``stack down`` (another terminal) find a runner and clean up after one that was killed
(``stack.shutdown``); the runner's ``watch`` loop (``stack.supervision``) carries out
``stack stop|start|restart|pause|resume`` requests (``stack.control``).

This module holds starting and stopping the whole; the layers below it (``stack.base``,
``stack.control``, ``stack.supervision``) hold the rest of the class.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from stack.base import ManagedService
from stack.control import clear_requests
from stack.errors import StackError, StackInterrupted
from stack.kafka import ensure_kafka_libs, ensure_topics
from stack.kafka_cluster import KafkaCluster
from stack.ports import HOST, Readiness, check_ports_free, port_open, probe
from stack.procs import ProcessHandle, owns_pid, read_pid
from stack.services import all_topics
from stack.shutdown import STACK_PID_FILE, STATE_FILE, cleanup_leftovers
from stack.supervision import Supervision
from stack.zipkin import ensure_zipkin_jar

__all__ = ["Stack"]

PROGRESS_EVERY_S = 2.0
HEARTBEAT_EVERY_S = 6.0


class _TopicsJob:
    """``ensure_topics`` in a daemon thread, so start-up polls the services meanwhile.

    A daemon thread rather than an executor: after a stop the broker is gone and the call only
    ends at its timeout, which must not hold up the runner's exit.
    """

    def __init__(self, bootstrap: str, topics: list[str], timeout: float) -> None:
        self.topics = topics
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._args = (bootstrap, topics, timeout)
        threading.Thread(target=self._run, name="ensure-topics", daemon=True).start()

    def _run(self) -> None:
        bootstrap, topics, timeout = self._args
        try:
            ensure_topics(bootstrap, topics, partitions=3, with_dlq=True, timeout=timeout)
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc
        finally:
            self.done.set()


def _read_between(path: Path, start: int, end: int) -> str:
    """The text of ``path`` from byte ``start`` up to ``end`` (to the end of the file if ``end`` <= start)."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read(end - start) if end > start else fh.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def _seed_report(output: str) -> list[str]:
    """What a ``seed`` run did, from its output: its printed lines and its own log messages.

    Services log JSON lines: only the seed's own messages and warnings are kept, not the
    migration chatter (alembic) or the domain's INFO lines; nor the stack's header line.
    """
    lines: list[str] = []
    for raw in output.splitlines():
        line = raw.strip()
        if not line or line.startswith("--- "):
            continue
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                logger, level = str(record.get("logger", "")), str(record.get("level", ""))
                own = logger.endswith(".seed") or level in ("WARNING", "ERROR", "CRITICAL")
                if own and record.get("message"):
                    lines.append(f"{record.get('service', 'seed')}: {record['message']}")
                continue
        lines.append(line)
    return lines


class Stack(Supervision):
    """Kafka (KRaft), the SMTP sink and the services, started and stopped together."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> float:
        """Start everything and return once every ``/health/ready`` is 200.

        Returns the seconds it took (the one-time Kafka download is not counted). On any
        failure or interruption everything started so far is stopped before the error
        propagates.
        """
        if self._started:
            raise StackError("this stack is already started")
        self._started = True
        self._stopping = False
        self._stop_requested.clear()
        self._t0 = time.monotonic()
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float | None = None) -> None:
        """Stop services (SIGTERM, SIGKILL after ``timeout``), then the SMTP sink, then Kafka.

        Idempotent; afterwards no process started by this stack is left.
        """
        grace = self.stop_timeout if timeout is None else timeout
        with self._proc_lock:  # no process may be started from now on
            self._stopping = True
        self._stop_requested.set()
        self._launcher_stop.set()
        began = time.monotonic()
        handles = [h for svc in self._services.values() for h in (svc.serve, svc.migrate) if h.running]
        if handles:
            self._say(f"stopping {', '.join(sorted({h.name.split('-')[0] for h in handles}))} …")
        for handle in handles:
            handle.send_term()
        deadline = time.monotonic() + grace
        for handle in handles:
            if handle.wait_stopped(deadline):
                self._say(f"{handle.name} ignored SIGTERM for {grace:.0f} s: killed")
        for svc in self._services.values():
            svc.wanted = svc.serving = False
            svc.ready = None
        for managed in self._kafka.values():
            managed.wanted = False
        self._smtp_wanted = False
        self._paused.clear()
        if self.smtp.running:
            self._say("stopping the SMTP sink …")
        self.smtp.stop(grace)
        if self.zipkin is not None:
            self.zipkin.stop(grace)
        if any(b.is_running for b in self.brokers):
            self._say("stopping Kafka …")
        # Every broker at once: the last ones of a cluster could not shut down in a controlled
        # way one by one (no quorum left) and would each wait for the timeout.
        KafkaCluster.stop_all(self.brokers)
        for name in self._kafka:
            (self.pids_dir / f"{name}.pid").unlink(missing_ok=True)
        self.databases.stop(grace)  # last: the services, which use it, are gone
        (self.run_dir / STATE_FILE).unlink(missing_ok=True)
        if self._started and self.spawned_any:
            self._say(f"stopped in {time.monotonic() - began:.1f} s")
        self._started = False

    def close(self) -> None:
        """Stop everything and release the probe threads and HTTP pool."""
        self.stop()
        self._pool.shutdown(wait=True)
        self._http.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- readiness ---------------------------------------------------------------------------

    def readiness(self) -> dict[str, Readiness]:
        """Probe every service's ``/health/ready`` concurrently."""
        names = list(self._services)
        results = self._pool.map(lambda n: probe(self.url(n), self._http), names)
        return dict(zip(names, results, strict=True))

    def seed(self, timeout: float = 120.0) -> None:
        """Insert the demo data again into the running stack (adds only what is missing).

        ``start()`` seeds already (with ``demo_data``): for auth (the admin and the demo
        license), room (the five rooms) and inventory (60 nights of availability from today) it
        runs ``python -m <service> seed`` instead of ``migrate`` (seed migrates first), before
        the service serves. This runs the same seeds next to the running services, in parallel,
        each with its service's environment; e.g. to extend the availability window of a stack
        running for days. Output goes to ``logs/<service>-seed.log`` and what each did is said.
        Raises ``StackError`` (with the seed's last lines) if one fails.
        """
        seeding = [svc for svc in self._services.values() if svc.spec.seeds and svc.primary]
        if not seeding:
            return
        self._say(f"seeding demo data: {', '.join(s.spec.name for s in seeding)}")
        handles: list[tuple[ManagedService, ProcessHandle]] = []
        for svc in seeding:
            handle = ProcessHandle(
                f"{svc.spec.name}-seed",
                svc.spec.command(sys.executable, "seed"),
                # Its own log: the service's log is being written by the running service.
                log_path=self.log_path(f"{svc.spec.name}-seed"),
                pid_path=self.pids_dir / f"{svc.spec.name}-seed.pid",
                env=svc.migrate.env,
            )
            with self._proc_lock:
                if self._stopping:
                    raise StackInterrupted("stop requested while seeding")
                handle.start()
            handles.append((svc, handle))
        deadline = time.monotonic() + timeout
        try:
            while any(h.running for _, h in handles):
                if self._stop_requested.is_set():
                    raise StackInterrupted("stop requested while seeding")
                if time.monotonic() >= deadline:
                    slow = ", ".join(h.name for _, h in handles if h.running)
                    raise StackError(f"seeding did not finish within {timeout:.0f} s: {slow}")
                self._stop_requested.wait(0.1)
        finally:
            for _, handle in handles:
                if handle.running:
                    handle.stop(self.stop_timeout)
        failed = [(svc, h) for svc, h in handles if h.returncode != 0]
        for svc, handle in handles:
            if handle.returncode == 0:
                for line in _seed_report(handle.tail(200)) or [f"{svc.spec.name}: demo data in place"]:
                    self._say(f"  {line}")
        if failed:
            raise StackError(
                "\n".join(
                    f"{svc.spec.name}: `python -m {svc.spec.package} seed` failed "
                    f"(exit {h.returncode}); last lines of {h.log_path}:\n{h.tail()}"
                    for svc, h in failed
                )
            )

    def summary_rows(self) -> list[tuple[str, str, str, str]]:
        """``(name, url, pid, ready)`` rows for the services, Kafka, the SMTP sink (and PostgreSQL)."""
        rows = []
        for name, svc in self._services.items():
            state = svc.ready.detail if svc.ready is not None else "-"
            rows.append((name, self.url(name), str(self.pid(name) or "-"), state))
        for name, managed in self._kafka.items():
            broker = managed.broker
            kafka_state = "running" if broker.is_running else self.state(name)
            rows.append((name, broker.bootstrap_servers, str(broker.pid or "-"), kafka_state))
        smtp_state = "running" if self.smtp.running else "stopped"
        smtp_pid = str(self.pid("smtp") or "-")
        rows.append(("smtp sink", f"smtp://{HOST}:{self.smtp_port}", smtp_pid, smtp_state))
        if self.zipkin is not None:
            zipkin_pid = str(self.zipkin.handle.pid or "-")
            zipkin_state = "running" if self.zipkin.running else "stopped"
            rows.append(("traces (zipkin)", self.zipkin.url, zipkin_pid, zipkin_state))
        if (db_row := self.databases.summary_row()) is not None:
            rows.append(db_row)
        return rows

    # -- start-up internals --------------------------------------------------------------------

    def _start(self, timeout: float) -> float:
        self._preflight()
        for folder in (self.logs_dir, self.pids_dir, self.mailbox_path.parent, self.run_dir / "data"):
            folder.mkdir(parents=True, exist_ok=True)
        with self._blocking():
            libs = self.kafka_libs_dir or ensure_kafka_libs(self.run_dir, progress=self._say)
            zipkin_jar = None
            if self.zipkin is not None:
                zipkin_jar = self.zipkin.jar or ensure_zipkin_jar(self.run_dir, progress=self._say)
        self._make_brokers(libs)
        self._t0 = time.monotonic()  # the one-time download is not part of "time to green"
        deadline = self._t0 + timeout
        self._write_state()
        primaries = [svc for svc in self._services.values() if svc.primary]
        with self._blocking():  # PostgreSQL (--db postgres): the migrations need their databases
            wanted = [svc.spec.name for svc in primaries]  # one per service, its instances share it
            self.databases.start(wanted, timeout=max(deadline - time.monotonic(), 5.0))
        # Migrations need neither Kafka nor peers: run them while the JVM boots. So does the
        # demo data: `seed` migrates, then inserts what is missing, in the same process.
        if primaries:
            self._say(f"migrating databases: {', '.join(s.name for s in primaries)}")
        seeding = [svc.name for svc in primaries if self._seeds_on_start(svc)]
        if seeding:
            self._say(f"seeding demo data (once migrated): {', '.join(seeding)}")
        for svc in self._services.values():
            svc.wanted = True
            if not svc.primary:
                continue  # serves once the first instance migrated the database they share
            action = "seed" if self._seeds_on_start(svc) else "migrate"
            svc.migrate.command = svc.spec.command(sys.executable, action)
            svc.migrate.start()
        # Services start serving as soon as their migration is done, without waiting for Kafka:
        # they must cope with a broker that comes later, and the JVM's start overlaps theirs.
        launcher = threading.Thread(target=self._launch_after_migrations, name="launcher", daemon=True)
        self._launcher_stop.clear()
        launcher.start()
        self.smtp.start()
        self._smtp_wanted = True
        self._say(f"SMTP sink on {HOST}:{self.smtp_port} → {self.mailbox_path}")
        if self.zipkin is not None and zipkin_jar is not None:  # its JVM boots beside Kafka's
            self.zipkin.start(zipkin_jar)
            self._say(f"starting Zipkin (traces) on {self.zipkin.url} …")
        data = self.broker.data_dir if self.kafka_brokers == 1 else self.broker.state_dir.parent
        self._say(f"starting Kafka on {self.bootstrap_servers} (data in {data}) …")
        with self._blocking():
            KafkaCluster.start_all(self.brokers, timeout=max(deadline - time.monotonic(), 5.0))
        for managed in self._kafka.values():
            managed.started_at = time.monotonic()
            managed.given_up = False
            managed.wanted = True
        # Topics are created while the services finish starting: neither waits for the other.
        topics = _TopicsJob(self.bootstrap_servers, all_topics(), max(deadline - time.monotonic(), 5.0))
        self._launcher_stop.set()
        launcher.join()
        self._wait_until_ready(deadline, timeout, topics)
        if self.zipkin is not None:
            with self._blocking():
                self.zipkin.wait_ready(deadline)
        self._write_state()  # now with every pid
        self.started_in = time.monotonic() - self._t0
        self._report_seeded()
        return self.started_in

    def _seeds_on_start(self, svc: ManagedService) -> bool:
        return self.demo_data and svc.spec.seeds and svc.primary

    def _report_seeded(self) -> None:
        """Say what each seed did (its output precedes the service's in the service's log)."""
        seeded = [svc for svc in self._services.values() if self._seeds_on_start(svc)]
        if seeded:
            self._say("demo data:")
        for svc in seeded:
            output = _read_between(svc.migrate.log_path, svc.migrate.log_offset, svc.serve.log_offset)
            for line in _seed_report(output) or [f"{svc.spec.name}: demo data in place"]:
                self._say(f"  {line}")

    def _preflight(self) -> None:
        missing = sorted({s.spec.package for s in self._services.values() if not s.spec.is_installed()})
        if missing:
            raise StackError(
                f"not installed in this environment: {', '.join(missing)}. "
                "Run `make bootstrap` (or `uv sync`) from the repository root."
            )
        runner_file = self.run_dir / STACK_PID_FILE
        runner = read_pid(runner_file)
        if runner is not None and runner != os.getpid() and owns_pid(runner, "stack", runner_file):
            raise StackError(
                f"a stack is already running from {self.run_dir} (runner pid {runner}); "
                "stop it with `make down` / `uv run stack down`"
            )
        clear_requests(self.run_dir)  # left by a runner that died before answering
        cleaned = cleanup_leftovers(self.run_dir, say=self._say)
        if cleaned:
            self._say(f"cleaned up {len(cleaned)} leftover process(es) of an earlier run")
        check_ports_free(self.ports())

    def _launch_after_migrations(self) -> None:
        """Start each service's ``serve`` once its migration exits 0 (runs while Kafka starts)."""
        while not self._launcher_stop.wait(0.1):
            pending = False
            for svc in self._services.values():
                if svc.serving or not svc.wanted:
                    continue
                code = self._migration(svc).returncode
                if code is None:
                    pending = True
                elif code == 0:
                    self._start_serving(svc)
                # A failed migration is reported by the main thread (_wait_until_ready).
            if not pending:
                return

    def _wait_until_ready(self, deadline: float, timeout: float, topics: _TopicsJob) -> None:
        last_line, last_said = "", 0.0
        topics_reported = False
        while True:
            if self._stop_requested.is_set():
                raise StackInterrupted("stop requested while starting")
            for svc in self._services.values():
                if not svc.serving and self._migration(svc).returncode is not None:
                    self._check_migration(svc)
                    self._start_serving(svc)
                self._check_alive(svc)
            if not self.smtp.running:
                raise StackError(
                    f"the SMTP sink exited with code {self.smtp.returncode}; "
                    f"last lines of {self.smtp.log_path}:\n{self.smtp.tail()}"
                )
            serving = [s for s in self._services.values() if s.serving]
            results = self._pool.map(lambda s: probe(self.url(s.name), self._http), serving)
            for svc, result in zip(serving, results, strict=True):
                svc.ready = result
            smtp_up = port_open(self.smtp_port)
            if topics.done.is_set() and not topics_reported:
                if topics.error is not None:
                    raise StackError(f"creating the Kafka topics failed: {topics.error}") from topics.error
                topics_reported = True
                n = len(topics.topics)
                replicas = min(self.kafka_brokers, 3)
                isr = 2 if replicas == 3 else 1
                self._say(
                    f"topics ready: {n} + {n} .dlq twins, 3 partitions and {replicas} replica(s) "
                    f"each, min.insync.replicas {isr}"
                )
            done = (
                smtp_up
                and topics_reported
                and all(s.ready is not None and s.ready.ready for s in self._services.values())
            )
            now = time.monotonic()
            line = self._progress_line(smtp_up, topics_reported)
            if (
                done
                or (line != last_line and now - last_said >= PROGRESS_EVERY_S)
                or (now - last_said >= HEARTBEAT_EVERY_S)
            ):
                self._say(line)
                last_line, last_said = line, now
            if done:
                return
            if now >= deadline:
                waiting = [s for s in self._services.values() if not (s.ready and s.ready.ready)]
                if not topics_reported and not waiting:
                    raise StackError(f"the Kafka topics were not created within {timeout:.0f} s")
                if not smtp_up and not waiting:
                    raise StackError(f"the SMTP sink does not accept connections on port {self.smtp_port}")
                raise StackError(self._not_ready_report(waiting, timeout))
            self._stop_requested.wait(0.5)

    def _progress_line(self, smtp_up: bool, topics_ready: bool) -> str:
        ready = [n for n, s in self._services.items() if s.ready is not None and s.ready.ready]
        # Group the others by reason, so six services waiting for the same thing stay one line.
        waiting: dict[str, list[str]] = {}
        for name, svc in self._services.items():
            if name in ready:
                continue
            if not svc.serving:
                reason = "migrating"
            else:
                reason = svc.ready.detail if svc.ready is not None else "starting"
            waiting.setdefault(reason, []).append(name)
        if not smtp_up:
            waiting.setdefault("not listening", []).append("smtp sink")
        if not topics_ready:
            waiting.setdefault("creating", []).append("topics")
        text = f"ready {len(ready)}/{len(self._services)}"
        if ready:
            text += f" ({', '.join(ready)})"
        for reason, names in waiting.items():
            text += f" · {reason}: {', '.join(names)}"
        return text
