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
``stack down`` (another terminal) find a runner and clean up after one that was killed; the
runner's ``watch`` loop carries out ``stack stop|start|restart|pause|resume`` requests
(``stack.control``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from stack.control import clear_requests, serve_requests
from stack.kafka import KafkaBroker, KafkaSetupError, KafkaStartError, ensure_kafka_libs, ensure_topics
from stack.procs import command_line, group_alive, pid_alive, port_open, signal_group, spawn, tail
from stack.services import HOST, SERVICES, ServiceSpec, all_topics, service_env, spec

__all__ = [
    "STACK_PID_FILE",
    "PortInUseError",
    "ProcessHandle",
    "Readiness",
    "Stack",
    "StackError",
    "StackInterrupted",
    "check_ports_free",
    "cleanup_leftovers",
    "down",
    "echo",
    "free_port_block",
    "marker_for",
    "owns_pid",
    "pid_alive",
    "port_in_use",
    "port_open",
    "probe",
    "read_pid",
    "read_state",
    "tail",
    "write_runner_pid",
]

Say = Callable[[str], None]

STACK_PID_FILE = "stack.pid"
STATE_FILE = "stack.json"
PIDS_DIR = "pids"
PROGRESS_EVERY_S = 2.0
HEARTBEAT_EVERY_S = 6.0
RESTART_BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a process that ran this long has its crash counter reset


class StackError(RuntimeError):
    """The stack could not start or a step failed; the message says what to look at."""


class PortInUseError(StackError):
    """A port the stack needs is already bound by another process."""


class StackInterrupted(StackError):
    """``request_stop()`` (Ctrl-C, SIGTERM, ``stack down``) arrived while starting."""


def echo(line: str = "", *, err: bool = False) -> None:
    """Print one line; a closed stdout (``make up | tee`` after Ctrl-C) must never stop a shutdown."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(line, file=stream, flush=True)
    except (OSError, ValueError):
        # Point the fd at /dev/null so later prints and the exit-time flush succeed silently.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())


# --------------------------------------------------------------------------- processes


def read_pid(path: Path) -> int | None:
    """The pid in a pid file (first line), or None if absent or unreadable."""
    try:
        return int(path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _write_pid(path: Path, pid: int) -> None:
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
            _write_pid(self.pid_path, self.popen.pid)

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


# --------------------------------------------------------------------------- ports and health


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something listens on ``host:port`` (a TIME_WAIT leftover does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option uvicorn and Kafka use, so a recently closed port reads as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port_block(count: int, host: str = HOST, low: int = 20_000, high: int = 32_000) -> int:
    """The first of ``count`` consecutive free ports, for stacks on non-default ports (tests).

    Chosen below the kernel's ephemeral range (32768+ on Linux): ports handed out by the OS
    (``bind(0)``) are also what outgoing connections use, so one of them may be taken by a
    client socket between the check and the service binding it.
    """
    rng = random.SystemRandom()
    for _ in range(500):
        first = rng.randrange(low, high - count)
        if not any(port_in_use(first + i, host) for i in range(count)):
            return first
    raise StackError(f"no {count} consecutive free ports found between {low} and {high}")


def check_ports_free(ports: Mapping[str, int], host: str = HOST) -> None:
    """Raise ``PortInUseError`` naming every taken port and what the stack wanted it for."""
    taken = [f"{port} ({what})" for what, port in ports.items() if port_in_use(port, host)]
    if taken:
        raise PortInUseError(
            f"port{'s' if len(taken) > 1 else ''} already in use on {host}: {', '.join(taken)}. "
            "Is a stack already running (`make down` / `uv run stack down`)? "
            "Otherwise stop what holds the port or choose other ports (--base-port, --kafka-port, "
            "--smtp-port)."
        )


@dataclass(frozen=True)
class Readiness:
    """The answer of one ``/health/ready`` probe, summarised for people."""

    ready: bool
    status: int | None
    detail: str
    body: str = ""


def _summarise(status: int, body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return f"{status}"
    checks = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(checks, dict):
        return f"{status}"
    failing = [
        name
        for name, check in checks.items()
        if isinstance(check, dict) and not check.get("ok", True) and check.get("critical", True)
    ]
    return f"{status}: {', '.join(failing)}" if failing else f"{status}"


def probe(url: str, client: httpx.Client | None = None, timeout: float = 3.0) -> Readiness:
    """GET ``<url>/health/ready`` once; never raises."""
    try:
        if client is None:
            response = httpx.get(f"{url}/health/ready", timeout=timeout)
        else:
            response = client.get(f"{url}/health/ready", timeout=timeout)
    except httpx.ConnectError:
        return Readiness(False, None, "not listening")
    except httpx.HTTPError as exc:
        return Readiness(False, None, type(exc).__name__)
    ok = response.status_code == 200
    detail = "ready" if ok else _summarise(response.status_code, response.text)
    return Readiness(ok, response.status_code, detail, response.text)


# --------------------------------------------------------------------------- supervision


@dataclass
class _Restarts:
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


@dataclass
class _Service:
    spec: ServiceSpec
    migrate: ProcessHandle
    serve: ProcessHandle
    wanted: bool = False  # False after stop_service(): the watcher must not restart it
    serving: bool = False  # the serve process was started (after a successful migration)
    ready: Readiness | None = None
    restarts: _Restarts | None = None


class Stack:
    """Kafka (KRaft), the SMTP sink and the services, started and stopped together."""

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
        kafka_libs_dir: Path | None = None,
        log_level: str = "INFO",
        stop_timeout: float = 10.0,
        say: Say | None = echo,
        demo_data: bool = True,
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
        self.broker = KafkaBroker(
            self.run_dir,
            port=kafka_port,
            controller_port=kafka_controller_port,
            log_file=self.logs_dir / "kafka.log",
            progress=self._say,
            pid_file=self.pids_dir / "kafka.pid",
        )
        self._kafka_restarts = _Restarts()
        self._kafka_started_at = 0.0
        self._kafka_given_up = False
        # Kafka and the SMTP sink are supervised while "wanted": False before start and after a
        # stop_service(), so the watcher keeps them down. Paused processes (SIGSTOP) by name:
        self._kafka_wanted = False
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
        self._smtp_restarts = _Restarts()
        names = list(services) if services is not None else [s.name for s in SERVICES]
        self._services: dict[str, _Service] = {}
        for name in names:
            svc_spec = spec(name)
            env = self._service_env(svc_spec)
            self._services[name] = _Service(
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
            )
        self._http = httpx.Client(timeout=3.0)
        self._pool = ThreadPoolExecutor(max_workers=max(len(self._services), 1), thread_name_prefix="probe")

    # -- addresses -------------------------------------------------------------------------

    @property
    def service_names(self) -> list[str]:
        """The services this stack runs, in catalogue order."""
        return list(self._services)

    @property
    def bootstrap_servers(self) -> str:
        """Kafka's ``host:port`` for clients."""
        return self.broker.bootstrap_servers

    @property
    def kafka_port(self) -> int:
        """Kafka's client port."""
        return self.broker.port

    def port(self, name: str) -> int:
        """The HTTP port of service ``name``."""
        return spec(name).port(self.base_port)

    def url(self, name: str) -> str:
        """``http://127.0.0.1:<port>`` of service ``name``."""
        return f"http://{HOST}:{self.port(name)}"

    def management_port(self, name: str) -> int:
        """The management port of service ``name`` (``/metrics``, internal docs)."""
        return spec(name).management_port(self.base_port)

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
        if name == "kafka":
            return self.broker.pid
        handle = self.smtp if name == "smtp" else self._services[name].serve
        return handle.pid if handle.running else None

    def ports(self) -> dict[str, int]:
        """Every port the stack binds, keyed by what uses it."""
        ports = {
            "kafka": self.broker.port,
            "kafka controller": self.broker.controller_port,
            "smtp sink": self.smtp_port,
        }
        ports.update({name: self.port(name) for name in self._services})
        ports.update({f"{name} management": self.management_port(name) for name in self._services})
        return ports

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
        self._kafka_wanted = self._smtp_wanted = False
        self._paused.clear()
        if self.smtp.running:
            self._say("stopping the SMTP sink …")
        self.smtp.stop(grace)
        if self.broker.is_running:
            self._say("stopping Kafka …")
        self.broker.stop()
        (self.pids_dir / "kafka.pid").unlink(missing_ok=True)
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

    # -- control: one process at a time (labs, `stack stop|start|...`, chaos tests) ------------

    @property
    def controllable(self) -> list[str]:
        """The names ``stop_service`` and the others accept: the services, ``kafka``, ``smtp``."""
        return [*self._services, "kafka", "smtp"]

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
        if name == "kafka":
            wanted = self._kafka_wanted and not self._kafka_given_up
        else:
            wanted = self._smtp_wanted if name == "smtp" else self._services[name].wanted
        return "down" if wanted else "stopped"

    def stop_service(self, name: str, timeout: float | None = None) -> None:
        """Stop a service, ``"kafka"`` or ``"smtp"`` (SIGTERM, then SIGKILL after ``timeout``).

        It stays down (the watcher does not restart it) until ``start_service(name)``.
        """
        self._known(name)
        grace = self.stop_timeout if timeout is None else timeout
        self._paused.discard(name)  # stopping resumes it first (SIGCONT after SIGTERM)
        if name == "kafka":
            self._kafka_wanted = False
            self._kafka_restarts = _Restarts()
            self.broker.stop(max(grace, 20.0))  # a clean broker shutdown takes longer
        elif name == "smtp":
            self._smtp_wanted = False
            self._smtp_restarts = _Restarts()
            self.smtp.stop(grace)
        else:
            svc = self._services[name]
            svc.wanted = svc.serving = False
            svc.ready = None
            for handle in (svc.serve, svc.migrate):
                if handle.running:
                    handle.stop(grace)
        self._say(f"{name} stopped")
        self._write_state()

    def start_service(
        self,
        name: str,
        wait_ready: bool = True,
        timeout: float = 60.0,
        env_overrides: Mapping[str, str] | None = None,
        migrate: bool = True,
    ) -> None:
        """Start a stopped service, ``"kafka"`` or ``"smtp"``; with ``wait_ready`` return once it serves.

        A service is migrated first; ``migrate=False`` skips that (a restart of a service whose
        database is at head: faster). ``env_overrides`` change the service's environment from
        now on (e.g. a lab restarts room with fault injection on); later restarts by the watcher
        keep them. Kafka is always waited for (its clients need it registered, not just bound).
        """
        self._known(name)
        if name == "kafka":
            self._start_kafka(timeout)
        elif name == "smtp":
            self._start_smtp(timeout if wait_ready else None)
        else:
            self._start_one_service(name, wait_ready, timeout, env_overrides or {}, migrate)
        self._say(f"{name} started (pid {self.pid(name)})")
        self._write_state()

    def restart_service(self, name: str, timeout: float = 60.0, wait_ready: bool = True) -> None:
        """``stop_service`` then ``start_service`` (a service is not migrated again)."""
        self.stop_service(name)
        self.start_service(name, wait_ready=wait_ready, timeout=timeout, migrate=False)

    def pause(self, name: str) -> None:
        """Freeze a running process (SIGSTOP to its process group): it holds its port and its
        connections but answers nothing, like a hung process, until ``resume(name)``."""
        pid = self.pid(self._known(name))
        if pid is None:
            raise StackError(f"{name} is not running")
        signal_group(pid, signal.SIGSTOP)
        self._paused.add(name)
        self._say(f"{name} paused (pid {pid}): `stack resume {name}` continues it")
        self._write_state()

    def resume(self, name: str) -> None:
        """Continue a process frozen by ``pause`` (SIGCONT)."""
        pid = self.pid(self._known(name))
        if pid is None:
            raise StackError(f"{name} is not running")
        signal_group(pid, signal.SIGCONT)
        self._paused.discard(name)
        self._say(f"{name} resumed (pid {pid})")
        self._write_state()

    def _start_kafka(self, timeout: float) -> None:
        if self.broker.is_running:
            raise StackError(f"kafka is already running (pid {self.broker.pid})")
        self._kafka_wanted = False  # the watcher must not start it meanwhile
        with self._blocking():
            self.broker.start(timeout=timeout)
        self._kafka_restarts = _Restarts()
        self._kafka_started_at = time.monotonic()
        self._kafka_given_up = False
        self._kafka_wanted = True

    def _start_smtp(self, timeout: float | None) -> None:
        if self.smtp.running:
            raise StackError(f"smtp is already running (pid {self.smtp.pid})")
        if port_in_use(self.smtp_port):
            raise PortInUseError(f"port {self.smtp_port} (smtp sink) is already in use on {HOST}")
        self._smtp_restarts = _Restarts()
        self.smtp.start()
        self._smtp_wanted = True
        if timeout is None:
            return
        deadline = time.monotonic() + timeout
        while not port_open(self.smtp_port):
            if not self.smtp.running:
                raise StackError(
                    f"the SMTP sink exited with code {self.smtp.returncode}; "
                    f"last lines of {self.smtp.log_path}:\n{self.smtp.tail()}"
                )
            if time.monotonic() >= deadline:
                raise StackError(f"the SMTP sink does not listen on {self.smtp_port} after {timeout:.0f} s")
            self._pause_or_interrupt(0.1)

    def _start_one_service(
        self, name: str, wait_ready: bool, timeout: float, env_overrides: Mapping[str, str], migrate: bool
    ) -> None:
        svc = self._services[name]
        for handle in (svc.migrate, svc.serve):
            assert handle.env is not None
            handle.env.update(env_overrides)
        if svc.serve.running:
            raise StackError(f"{name} is already running (pid {svc.serve.pid})")
        check_ports_free({name: self.port(name), f"{name} management": self.management_port(name)})
        deadline = time.monotonic() + timeout
        svc.wanted = True
        svc.restarts = _Restarts()
        if migrate:
            svc.migrate.command = svc.spec.command(sys.executable, "migrate")  # seeded at start already
            svc.migrate.start()
            while svc.migrate.running:
                if time.monotonic() >= deadline:
                    svc.migrate.stop(self.stop_timeout)
                    raise StackError(f"{name}: migration did not finish within {timeout:.0f} s")
                self._pause_or_interrupt(0.1)
            self._check_migration(svc)
        self._start_serving(svc)
        if not wait_ready:
            return
        while True:
            self._check_alive(svc)
            svc.ready = probe(self.url(name), self._http)
            if svc.ready.ready:
                return
            if time.monotonic() >= deadline:
                raise StackError(self._not_ready_report([svc], timeout))
            self._pause_or_interrupt(0.2)

    def _pause_or_interrupt(self, seconds: float) -> None:
        # A `stack down` (SIGTERM) while a control request waits must not wait for it to finish.
        if self._stop_requested.wait(seconds):
            raise StackInterrupted("stop requested")

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
        seeding = [svc for svc in self._services.values() if svc.spec.seeds]
        if not seeding:
            return
        self._say(f"seeding demo data: {', '.join(s.spec.name for s in seeding)}")
        handles: list[tuple[_Service, ProcessHandle]] = []
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
        """``(name, url, pid, ready)`` rows for the services, Kafka and the SMTP sink."""
        rows = []
        for name, svc in self._services.items():
            state = svc.ready.detail if svc.ready is not None else "-"
            rows.append((name, self.url(name), str(self.pid(name) or "-"), state))
        kafka_state = "running" if self.broker.is_running else "stopped"
        rows.append(("kafka", self.bootstrap_servers, str(self.broker.pid or "-"), kafka_state))
        smtp_state = "running" if self.smtp.running else "stopped"
        smtp_pid = str(self.pid("smtp") or "-")
        rows.append(("smtp sink", f"smtp://{HOST}:{self.smtp_port}", smtp_pid, smtp_state))
        return rows

    # -- supervision -------------------------------------------------------------------------

    def watch(self, restart: bool = True, interval: float = 0.5) -> None:
        """Supervise until ``request_stop()``: report crashes, restart with backoff, report readiness."""
        last_probe = 0.0
        while not self._stop_requested.wait(interval):
            serve_requests(self)  # `stack stop|start|restart|pause|resume` from other terminals
            now = time.monotonic()
            for svc in self._services.values():
                self._supervise_service(svc, now, restart)
            self._supervise_smtp(now, restart)
            self._supervise_kafka(now, restart)
            if now - last_probe >= 3.0:
                last_probe = now
                self._report_readiness_changes()

    def _supervise_service(self, svc: _Service, now: float, restart: bool) -> None:
        if not svc.wanted:
            return
        restarts = svc.restarts = svc.restarts or _Restarts()
        if svc.serving and not svc.serve.running:
            code = svc.serve.returncode
            svc.serving = False
            svc.ready = None
            log_path = svc.serve.log_path
            self._say(f"{svc.spec.name} exited unexpectedly (code {code}); last lines of {log_path}:")
            self._say_block(svc.serve.tail(10))
            if restart:
                delay = restarts.crashed(now - svc.serve.started_at)
                self._say(f"restarting {svc.spec.name} in {delay:.0f} s")
            else:
                svc.wanted = False
        if not svc.serving and restarts.next_at is not None and now >= restarts.next_at:
            restarts.next_at = None
            port = self.port(svc.spec.name)
            if port_in_use(port):
                self._say(f"cannot restart {svc.spec.name}: port {port} is taken; retrying")
                restarts.crashed(0.0)
                return
            self._say(f"restarting {svc.spec.name} (attempt {restarts.crashes})")
            self._start_serving(svc)
            self._write_state()

    def _supervise_smtp(self, now: float, restart: bool) -> None:
        if self.smtp.popen is None or not self._smtp_wanted:
            return
        if not self.smtp.running and self._smtp_restarts.next_at is None:
            self._say(f"SMTP sink exited (code {self.smtp.returncode}); see {self.smtp.log_path}")
            if not restart:
                self._smtp_wanted = False  # reported once; down until start_service("smtp")
                return
            delay = self._smtp_restarts.crashed(now - self.smtp.started_at)
            self._say(f"restarting the SMTP sink in {delay:.0f} s")
        next_at = self._smtp_restarts.next_at
        if next_at is not None and now >= next_at:
            self._smtp_restarts.next_at = None
            self.smtp.start()
            self._write_state()

    def _supervise_kafka(self, now: float, restart: bool) -> None:
        restarts = self._kafka_restarts
        if self.broker.is_running or not self._kafka_wanted or self._kafka_given_up:
            return
        if restarts.next_at is None:
            self._say(f"Kafka exited unexpectedly; last lines of {self.broker.log_file}:")
            self._say_block(tail(self.broker.log_file, 10))
            if not restart:
                self._kafka_given_up = True  # report once
                return
            delay = restarts.crashed(now - self._kafka_started_at)
            self._say(f"restarting Kafka in {delay:.0f} s")
            return
        if now >= restarts.next_at:
            try:
                with self._blocking():
                    self.broker.start(timeout=60)
            except (KafkaSetupError, KafkaStartError, OSError) as exc:
                delay = restarts.crashed(0.0)
                self._say(f"Kafka did not restart ({type(exc).__name__}); retrying in {delay:.0f} s")
                return
            restarts.next_at = None
            self._kafka_started_at = time.monotonic()
            self._write_state()

    def _report_readiness_changes(self) -> None:
        serving = [n for n, s in self._services.items() if s.serving and s.serve.running]
        results = self._pool.map(lambda n: probe(self.url(n), self._http), serving)
        for name, result in zip(serving, results, strict=True):
            svc = self._services[name]
            before = svc.ready
            svc.ready = result
            if before is None or before.ready != result.ready:
                self._say(f"{name}: {'ready' if result.ready else 'NOT ready (' + result.detail + ')'}")

    # -- start-up internals --------------------------------------------------------------------

    def _start(self, timeout: float) -> float:
        self._preflight()
        for folder in (self.logs_dir, self.pids_dir, self.mailbox_path.parent, self.run_dir / "data"):
            folder.mkdir(parents=True, exist_ok=True)
        with self._blocking():
            libs = self.kafka_libs_dir or ensure_kafka_libs(self.run_dir, progress=self._say)
        self.broker = self._with_libs(libs)
        self._t0 = time.monotonic()  # the one-time download is not part of "time to green"
        deadline = self._t0 + timeout
        self._write_state()
        # Migrations need neither Kafka nor peers: run them while the JVM boots. So does the
        # demo data: `seed` migrates, then inserts what is missing, in the same process.
        if self._services:
            self._say(f"migrating databases: {', '.join(self._services)}")
        seeding = [name for name, svc in self._services.items() if self._seeds_on_start(svc)]
        if seeding:
            self._say(f"seeding demo data (once migrated): {', '.join(seeding)}")
        for svc in self._services.values():
            svc.wanted = True
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
        self._say(f"starting Kafka on {self.bootstrap_servers} (data in {self.broker.data_dir}) …")
        with self._blocking():
            self.broker.start(timeout=max(deadline - time.monotonic(), 5.0))
        self._kafka_started_at = time.monotonic()
        self._kafka_given_up = False
        self._kafka_wanted = True
        # Topics are created while the services finish starting: neither waits for the other.
        topics = _TopicsJob(self.bootstrap_servers, all_topics(), max(deadline - time.monotonic(), 5.0))
        self._launcher_stop.set()
        launcher.join()
        self._wait_until_ready(deadline, timeout, topics)
        self._write_state()  # now with every pid
        self.started_in = time.monotonic() - self._t0
        self._report_seeded()
        return self.started_in

    def _seeds_on_start(self, svc: _Service) -> bool:
        return self.demo_data and svc.spec.seeds

    def _report_seeded(self) -> None:
        """Say what each seed did (its output precedes the service's in the service's log)."""
        seeded = [svc for svc in self._services.values() if self._seeds_on_start(svc)]
        if seeded:
            self._say("demo data:")
        for svc in seeded:
            output = _read_between(svc.migrate.log_path, svc.migrate.log_offset, svc.serve.log_offset)
            for line in _seed_report(output) or [f"{svc.spec.name}: demo data in place"]:
                self._say(f"  {line}")

    def _with_libs(self, libs: Path) -> KafkaBroker:
        # KafkaBroker takes the jar folder at construction; rebuild it with the same settings.
        return KafkaBroker(
            self.run_dir,
            port=self.broker.port,
            controller_port=self.broker.controller_port,
            libs_dir=libs,
            log_file=self.broker.log_file,
            progress=self._say,
            pid_file=self.broker.pid_file,
        )

    def _preflight(self) -> None:
        missing = [svc.spec.package for svc in self._services.values() if not svc.spec.is_installed()]
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

    def _write_state(self) -> None:
        state = {
            "runner_pid": os.getpid(),
            "base_port": self.base_port,
            "kafka_port": self.broker.port,
            "kafka_controller_port": self.broker.controller_port,
            "smtp_port": self.smtp_port,
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

    def _check_migration(self, svc: _Service) -> None:
        code = svc.migrate.returncode
        if code not in (None, 0):
            svc.wanted = False
            action = svc.migrate.command[-1]  # migrate, or seed (which migrates first)
            raise StackError(
                f"{svc.spec.name}: `python -m {svc.spec.package} {action}` failed (exit {code}); "
                f"last lines of {svc.migrate.log_path}:\n{svc.migrate.tail()}"
            )

    def _check_alive(self, svc: _Service) -> None:
        if svc.serving and not svc.serve.running:
            raise StackError(
                f"{svc.spec.name} exited with code {svc.serve.returncode} while starting; "
                f"last lines of {svc.serve.log_path}:\n{svc.serve.tail()}"
            )

    def _start_serving(self, svc: _Service) -> None:
        with self._proc_lock:
            if self._stopping and self._started:
                return  # stop() has begun: starting a process now would leave it behind
            svc.serve.start()
            svc.serving = True
            svc.ready = None

    def _launch_after_migrations(self) -> None:
        """Start each service's ``serve`` once its migration exits 0 (runs while Kafka starts)."""
        while not self._launcher_stop.wait(0.1):
            pending = False
            for svc in self._services.values():
                if svc.serving or not svc.wanted:
                    continue
                code = svc.migrate.returncode
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
                if not svc.serving and svc.migrate.returncode is not None:
                    self._check_migration(svc)
                    self._start_serving(svc)
                self._check_alive(svc)
            if not self.smtp.running:
                raise StackError(
                    f"the SMTP sink exited with code {self.smtp.returncode}; "
                    f"last lines of {self.smtp.log_path}:\n{self.smtp.tail()}"
                )
            serving = [s for s in self._services.values() if s.serving]
            results = self._pool.map(lambda s: probe(self.url(s.spec.name), self._http), serving)
            for svc, result in zip(serving, results, strict=True):
                svc.ready = result
            smtp_up = port_open(self.smtp_port)
            if topics.done.is_set() and not topics_reported:
                if topics.error is not None:
                    raise StackError(f"creating the Kafka topics failed: {topics.error}") from topics.error
                topics_reported = True
                n = len(topics.topics)
                self._say(f"topics ready: {n} + {n} .dlq twins, 3 partitions each")
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

    def _not_ready_report(self, waiting: Sequence[_Service], timeout: float) -> str:
        parts = [f"not ready within {timeout:.0f} s: {', '.join(s.spec.name for s in waiting)}"]
        for svc in waiting:
            ready = svc.ready
            parts.append(f"\n== {svc.spec.name}: {ready.detail if ready else 'never answered'}")
            if ready is not None and ready.body:
                parts.append(f"readiness body: {ready.body}")
            handle = svc.serve if svc.serving else svc.migrate  # still migrating at the deadline
            parts.append(f"last lines of {handle.log_path}:\n{handle.tail()}")
        return "\n".join(parts)

    # -- helpers ---------------------------------------------------------------------------------

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

    def _service_env(self, svc_spec: ServiceSpec) -> dict[str, str]:
        env = self._base_env()
        env.update(
            service_env(
                svc_spec,
                base_port=self.base_port,
                run_dir=self.run_dir,
                bootstrap_servers=f"{HOST}:{self.broker.port}",
                smtp_port=self.smtp_port,
                log_level=self.log_level,
            )
        )
        env.update(self.env_overrides)
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


# --------------------------------------------------------------------------- down / leftovers


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
    _write_pid(path, os.getpid())
    return path


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The ports and URLs a running stack wrote at start, if any."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
