"""What a ``Stack`` knows about its processes, and the helpers every layer of it shares.

The stack is one class built in layers, one concept each: ``StackBase`` (this module: the
processes, their addresses and states, the state file), ``stack.control.Control`` (stop, start,
pause one process), ``stack.supervision.Supervision`` (the watch loop: crashes, restarts) and
``stack.runner.Stack`` (starting and stopping the whole).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stack.console import Say, echo
from stack.databases import StackDatabases, default_postgres_port
from stack.errors import StackError, StackInterrupted
from stack.instances import instance_env, instance_name, split_name
from stack.kafka import KafkaBroker
from stack.kafka_cluster import KafkaCluster
from stack.ports import HOST, Readiness
from stack.postgres import PostgresServer
from stack.procs import ProcessHandle
from stack.services import SERVICES, ServiceSpec, service_env, spec
from stack.shutdown import PIDS_DIR, STATE_FILE
from stack.zipkin import ZipkinServer

__all__ = ["ManagedBroker", "ManagedService", "Restarts", "StackBase"]

RESTART_BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a process that ran this long has its crash counter reset


@dataclass
class Restarts:
    """Crash bookkeeping for one supervised process: exponential backoff, reset when stable."""

    crashes: int = 0
    next_at: float | None = None

    def crashed(self, ran_for: float) -> float:
        if ran_for >= STABLE_AFTER_S:
            self.crashes = 0
        self.crashes += 1
        delay = min(2.0 ** (self.crashes - 1), RESTART_BACKOFF_MAX_S)
        self.next_at = time.monotonic() + delay
        return delay


@dataclass
class ManagedService:
    """One instance of a service in a stack: its migrate (or seed) and serve processes, and what
    is wanted of it. Only the first instance (``room``) migrates; ``room-2`` waits for it."""

    spec: ServiceSpec
    migrate: ProcessHandle
    serve: ProcessHandle
    instance: int = 1  # 1: the first (named like the service), 2: <service>-2, ...
    wanted: bool = False  # False after stop_service(): the watcher must not restart it
    serving: bool = False  # the serve process was started (after a successful migration)
    ready: Readiness | None = None
    restarts: Restarts | None = None

    @property
    def name(self) -> str:
        """The process's name: ``room``, ``room-2`` (logs, pid files, ``stack stop room-2``)."""
        return instance_name(self.spec.name, self.instance)

    @property
    def primary(self) -> bool:
        """The first instance: it migrates and seeds the database the others share."""
        return self.instance == 1


@dataclass
class ManagedBroker:
    """One Kafka broker of a stack (``kafka``, or ``kafka-<n>`` of a cluster) and what is wanted of it."""

    broker: KafkaBroker
    wanted: bool = False  # supervised: False before start and after stop_service()
    restarts: Restarts = field(default_factory=Restarts)
    started_at: float = 0.0
    given_up: bool = False  # crashed with restarts off: reported once, down until started


class StackBase:
    """The state of a stack of Kafka, the SMTP sink and the services; see ``stack.runner.Stack``."""

    def __init__(
        self,
        run_dir: Path,
        *,
        kafka_port: int = 9092,
        kafka_controller_port: int | None = None,
        base_port: int = 8000,
        smtp_port: int = 1025,
        env_overrides: Mapping[str, str] | None = None,
        services: Sequence[str] | None = None,
        instances: Mapping[str, int] | None = None,
        kafka_libs_dir: Path | None = None,
        kafka_brokers: int = 1,
        log_level: str = "INFO",
        stop_timeout: float = 10.0,
        say: Say | None = echo,
        demo_data: bool = True,
        db: str = "sqlite",
        postgres_port: int | None = None,
        postgres: PostgresServer | None = None,
        zipkin_port: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.demo_data = demo_data
        """Seed the demo data at start (idempotent: a second start adds nothing)."""
        self.base_port = base_port
        self.smtp_port = smtp_port
        self.env_overrides = dict(env_overrides or {})
        self.log_level = log_level
        self.stop_timeout = stop_timeout
        self.logs_dir = self.run_dir / "logs"
        self.pids_dir = self.run_dir / PIDS_DIR
        self.mailbox_path = self.run_dir / "mail" / "mailbox.jsonl"
        self.kafka_libs_dir = kafka_libs_dir
        self.started_in: float | None = None
        """Seconds from ``start()`` to every service ready (Kafka jar download excluded)."""
        self._say_fn = say
        self._t0 = time.monotonic()
        self._stop_requested = threading.Event()
        self._launcher_stop = threading.Event()
        self._proc_lock = threading.Lock()
        self._blocking_depth = 0
        self._stopping = False
        self._started = False
        if kafka_brokers < 1:
            raise StackError(f"kafka_brokers must be 1 or more, not {kafka_brokers}")
        self.kafka_brokers = kafka_brokers
        self._kafka_ports = (kafka_port, kafka_controller_port)
        self._kafka: dict[str, ManagedBroker] = {}
        self._make_brokers(kafka_libs_dir)
        # Kafka and the SMTP sink are supervised while "wanted": False before start and after a
        # stop_service(), so the watcher keeps them down. Paused processes (SIGSTOP) by name:
        self._smtp_wanted = False
        self._paused: set[str] = set()
        self.smtp = ProcessHandle(
            "smtp",
            [
                sys.executable,
                "-m",
                "stack.smtp_sink",
                "--port",
                str(smtp_port),
                "--mailbox",
                str(self.mailbox_path),
            ],
            log_path=self.logs_dir / "smtp.log",
            pid_path=self.pids_dir / "smtp.pid",
            env=self._base_env(),
        )
        self._smtp_restarts = Restarts()
        # The trace backend (``zipkin_port``): every service exports its spans to it.
        self.zipkin = (
            ZipkinServer(zipkin_port, logs_dir=self.logs_dir, pids_dir=self.pids_dir, env=self._base_env())
            if zipkin_port is not None
            else None
        )
        # ``postgres``: a server of the caller's to start and stop instead (tests: a throwaway one).
        self.databases = StackDatabases(
            db,
            self.run_dir,
            port=default_postgres_port(kafka_port, kafka_brokers) if postgres_port is None else postgres_port,
            logs_dir=self.logs_dir,
            pids_dir=self.pids_dir,
            server=postgres,
            say=self._say,
        )
        self._db_restarts = Restarts()
        names = list(services) if services is not None else [s.name for s in SERVICES]
        if unknown := sorted(set(instances or {}) - set(names)):
            raise StackError(f"--instances names services this stack does not run: {', '.join(unknown)}")
        self.instances = {n: (instances or {}).get(n, 1) for n in names}
        """How many instances each service runs (``stack.instances``)."""
        self._services: dict[str, ManagedService] = {}
        for service in names:
            svc_spec = spec(service)
            for n in range(1, self.instances[service] + 1):
                name = instance_name(service, n)
                env = self._service_env(svc_spec, n)
                self._services[name] = ManagedService(
                    svc_spec,
                    migrate=ProcessHandle(
                        f"{name}-migrate",
                        svc_spec.command(sys.executable, "migrate"),
                        log_path=self.log_path(name),
                        pid_path=self.pids_dir / f"{name}-migrate.pid",
                        env=env,
                    ),
                    serve=ProcessHandle(
                        name,
                        svc_spec.command(sys.executable, "serve"),
                        log_path=self.log_path(name),
                        pid_path=self.pids_dir / f"{name}.pid",
                        env=env,
                    ),
                    instance=n,
                )
        self._http = httpx.Client(timeout=3.0)
        self._pool = ThreadPoolExecutor(max_workers=max(len(self._services), 1), thread_name_prefix="probe")

    # -- addresses -------------------------------------------------------------------------

    @property
    def service_names(self) -> list[str]:
        """The processes of the services this stack runs, in catalogue order (``room``, ``room-2``)."""
        return list(self._services)

    def instances_of(self, service: str) -> list[str]:
        """The names of ``service``'s instances: ``["room", "room-2"]``."""
        return [instance_name(service, n) for n in range(1, self.instances.get(service, 0) + 1)]

    @property
    def brokers(self) -> list[KafkaBroker]:
        """The Kafka brokers: one (``kafka``), or the nodes of a cluster (``kafka-1`` …)."""
        return [m.broker for m in self._kafka.values()]

    @property
    def broker(self) -> KafkaBroker:
        """The first (with ``kafka_brokers=1`` the only) Kafka broker."""
        return self.brokers[0]

    @property
    def kafka_names(self) -> list[str]:
        """``["kafka"]``, or ``["kafka-1", "kafka-2", "kafka-3"]`` for a 3-broker cluster."""
        return list(self._kafka)

    @property
    def bootstrap_servers(self) -> str:
        """Every broker's ``host:port``, comma-separated, for clients."""
        return ",".join(b.bootstrap_servers for b in self.brokers)

    @property
    def kafka_port(self) -> int:
        """Kafka's (the first broker's) client port."""
        return self.broker.port

    def port(self, name: str) -> int:
        """The HTTP port of service ``name`` (or of an instance: ``room-2``)."""
        service, n = split_name(name)
        return spec(service).port(self.base_port, n)

    def url(self, name: str) -> str:
        """``http://127.0.0.1:<port>`` of service ``name``."""
        return f"http://{HOST}:{self.port(name)}"

    def management_port(self, name: str) -> int:
        """The management port of service ``name`` (``/metrics``, internal docs)."""
        service, n = split_name(name)
        return spec(service).management_port(self.base_port, n)

    def management_url(self, name: str) -> str:
        """``http://127.0.0.1:<management port>`` of service ``name``, e.g. ``…:9003`` for room."""
        return f"http://{HOST}:{self.management_port(name)}"

    def service_env(self, name: str) -> dict[str, str]:
        """A copy of the environment service ``name`` runs with (e.g. to run a second instance
        of it on another port, with other settings)."""
        env = self._services[name].serve.env
        assert env is not None  # services always get an explicit environment
        return dict(env)

    def log_path(self, name: str) -> Path:
        """Where a process's output goes: ``<run_dir>/logs/<name>.log``."""
        return self.logs_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        """The pid of a running service, ``"kafka"`` or ``"smtp"``; None if not running."""
        self._known(name)
        if name in self._kafka:
            return self._kafka[name].broker.pid
        handle = self.smtp if name == "smtp" else self._services[name].serve
        return handle.pid if handle.running else None

    def ports(self) -> dict[str, int]:
        """Every port the stack binds, keyed by what uses it."""
        ports: dict[str, int] = {}
        for name, managed in self._kafka.items():
            ports[name] = managed.broker.port
            ports[f"{name} controller"] = managed.broker.controller_port
        ports["smtp sink"] = self.smtp_port
        if self.zipkin is not None:
            ports["zipkin"] = self.zipkin.port
        ports.update(self.databases.ports())
        ports.update({name: self.port(name) for name in self._services})
        ports.update({f"{name} management": self.management_port(name) for name in self._services})
        return ports

    # -- flags -----------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask a running ``start()`` or ``watch()`` to return (safe from a signal handler)."""
        self._stop_requested.set()

    @property
    def stop_requested(self) -> bool:
        """True once ``request_stop()`` or ``stop()`` was called."""
        return self._stop_requested.is_set()

    @property
    def spawned_any(self) -> bool:
        """True once ``start()`` got past its checks and started a process."""
        return self.smtp.popen is not None or any(
            s.migrate.popen is not None for s in self._services.values()
        )

    @property
    def stopping(self) -> bool:
        """True while (or after) ``stop()`` runs."""
        return self._stopping

    @property
    def in_blocking_call(self) -> bool:
        """True inside a step that cannot poll for a stop request (Kafka start, Maven).

        A signal handler raises ``KeyboardInterrupt`` then, to cut the step short.
        """
        return self._blocking_depth > 0

    # -- process names and states ----------------------------------------------------------

    @property
    def controllable(self) -> list[str]:
        """The names ``stop_service`` and the others accept: the services, ``kafka`` (or each
        broker of a cluster, ``kafka-1`` …), ``smtp``."""
        return [*self._services, *self._kafka, "smtp"]

    def _known(self, name: str) -> str:
        if name not in self.controllable:
            raise StackError(f"unknown process {name!r}; this stack runs {', '.join(self.controllable)}")
        return name

    def state(self, name: str) -> str:
        """``running``; ``paused`` (``pause``); ``stopped`` (``stop_service``, or crashed with
        restarts off: down until ``start_service``); ``down`` (crashed or starting: the watcher
        brings it back)."""
        if self.pid(name) is not None:
            return "paused" if name in self._paused else "running"
        if name in self._kafka:
            wanted = self._kafka[name].wanted and not self._kafka[name].given_up
        else:
            wanted = self._smtp_wanted if name == "smtp" else self._services[name].wanted
        return "down" if wanted else "stopped"

    # -- shared by the layers ----------------------------------------------------------------

    def _write_state(self) -> None:
        state = {
            "runner_pid": os.getpid(),
            "base_port": self.base_port,
            "kafka_port": self.broker.port,
            "kafka_controller_port": self.broker.controller_port,
            "kafka_bootstrap": self.bootstrap_servers,
            "kafka_brokers": {name: m.broker.port for name, m in self._kafka.items()},
            "smtp_port": self.smtp_port,
            **self.databases.state(),
            "services": {name: self.url(name) for name in self._services},
            "mailbox": str(self.mailbox_path),
            # What `stack status` shows beside readiness; rewritten whenever a pid or state changes.
            "processes": {n: {"pid": self.pid(n), "state": self.state(n)} for n in self.controllable},
        }
        # Replaced in one step: `stack status` in another terminal never reads half a file.
        path = self.run_dir / STATE_FILE
        staging = path.with_name(f".{STATE_FILE}.{os.getpid()}")
        staging.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        staging.replace(path)

    def _migration(self, svc: ManagedService) -> ProcessHandle:
        """The process that migrates ``svc``'s database: its first instance's."""
        return self._services[svc.spec.name].migrate if svc.spec.name in self._services else svc.migrate

    def _check_migration(self, svc: ManagedService) -> None:
        migrate = self._migration(svc)
        code = migrate.returncode
        if code not in (None, 0):
            svc.wanted = False
            action = migrate.command[-1]  # migrate, or seed (which migrates first)
            raise StackError(
                f"{svc.name}: `python -m {svc.spec.package} {action}` failed (exit {code}); "
                f"last lines of {migrate.log_path}:\n{migrate.tail()}"
            )

    def _check_alive(self, svc: ManagedService) -> None:
        if svc.serving and not svc.serve.running:
            raise StackError(
                f"{svc.name} exited with code {svc.serve.returncode} while starting; "
                f"last lines of {svc.serve.log_path}:\n{svc.serve.tail()}"
            )

    def _start_serving(self, svc: ManagedService) -> None:
        with self._proc_lock:
            if self._stopping and self._started:
                return  # stop() has begun: starting a process now would leave it behind
            svc.serve.start()
            svc.serving = True
            svc.ready = None

    def _not_ready_report(self, waiting: Sequence[ManagedService], timeout: float) -> str:
        parts = [f"not ready within {timeout:.0f} s: {', '.join(s.name for s in waiting)}"]
        for svc in waiting:
            ready = svc.ready
            parts.append(f"\n== {svc.name}: {ready.detail if ready else 'never answered'}")
            if ready is not None and ready.body:
                parts.append(f"readiness body: {ready.body}")
            handle = svc.serve if svc.serving else self._migration(svc)  # still migrating at the deadline
            parts.append(f"last lines of {handle.log_path}:\n{handle.tail()}")
        return "\n".join(parts)

    def _pause_or_interrupt(self, seconds: float) -> None:
        # A `stack down` (SIGTERM) while a control request waits must not wait for it to finish.
        if self._stop_requested.wait(seconds):
            raise StackInterrupted("stop requested")

    # -- helpers ---------------------------------------------------------------------------------

    def _make_brokers(self, libs: Path | None) -> None:
        """(Re)build the broker objects (``KafkaBroker`` takes the jar folder at construction)."""
        port, controller_port = self._kafka_ports
        if self.kafka_brokers == 1:
            brokers = [
                KafkaBroker(
                    self.run_dir,
                    port=port,
                    controller_port=controller_port,
                    libs_dir=libs,
                    log_file=self.logs_dir / "kafka.log",
                    progress=self._say,
                    pid_file=self.pids_dir / "kafka.pid",
                )
            ]
        else:
            brokers = KafkaCluster(
                self.run_dir,
                nodes=self.kafka_brokers,
                port=port,
                controller_port=controller_port,
                libs_dir=libs,
                log_dir=self.logs_dir,
                pids_dir=self.pids_dir,
                progress=self._say,
            ).brokers
        self._kafka = {b.name: ManagedBroker(b) for b in brokers}

    @contextlib.contextmanager
    def _blocking(self) -> Iterator[None]:
        self._blocking_depth += 1
        try:
            if self._stop_requested.is_set() and not self._stopping:
                raise StackInterrupted("stop requested")
            yield
        finally:
            self._blocking_depth -= 1

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["RUN_DIR"] = str(self.run_dir)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _service_env(self, svc_spec: ServiceSpec, instance: int = 1) -> dict[str, str]:
        env = self._base_env()
        env.update(
            service_env(
                svc_spec,
                base_port=self.base_port,
                run_dir=self.run_dir,
                bootstrap_servers=self.bootstrap_servers,
                smtp_port=self.smtp_port,
                log_level=self.log_level,
                instance=instance,
                instances=self.instances,
            )
        )
        env.update(self.databases.service_env(svc_spec))
        if self.zipkin is not None:
            env[f"{svc_spec.env_prefix}ZIPKIN_ENDPOINT"] = self.zipkin.spans_endpoint
            if svc_spec.name == "gateway":  # the ops console links each recent request to its trace
                env["GATEWAY_TRACE_LINKS_BASE"] = f"http://{HOST}:{self.zipkin.port}"
        env.update(self.env_overrides)
        env.update(instance_env(svc_spec.name, instance, env))
        return env

    def _say(self, message: str) -> None:
        if self._say_fn is not None:
            # Reporting is best effort: it must never interrupt starting or stopping processes.
            with contextlib.suppress(Exception):
                self._say_fn(f"[{time.monotonic() - self._t0:5.1f}s] {message}")

    def _say_block(self, text: str) -> None:
        if self._say_fn is not None:
            for line in text.splitlines():
                with contextlib.suppress(Exception):
                    self._say_fn(f"    {line}")
