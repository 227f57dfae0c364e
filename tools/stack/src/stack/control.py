"""``stack stop|start|restart|pause|resume <name>``: control a running stack from any terminal.

``Control`` is the layer of ``Stack`` that does it (``stop_service``, ``start_service``,
``pause`` …); the rest of this module carries requests from another terminal to it.

The command drops a request file into ``<run_dir>/control/``; the runner's supervision loop
(``Stack.watch``, every 0.5 s) picks it up, carries it out with the same ``Stack`` methods the
tests use, and writes the reply beside it. Files rather than a socket: nothing more to bind,
visible with ``ls``, and a runner that dies before answering is noticed (its pid is watched).
One request at a time: the loop does them in order of arrival.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stack.base import Restarts, StackBase
from stack.errors import PortInUseError, StackError
from stack.ports import HOST, check_ports_free, port_in_use, port_open, probe
from stack.procs import signal_group

__all__ = [
    "ACTIONS",
    "CONTROL_DIR",
    "Control",
    "ControlError",
    "Request",
    "clear_requests",
    "send",
    "serve_requests",
]

ACTIONS = ("stop", "start", "restart", "pause", "resume")
CONTROL_DIR = "control"
_REQUEST = ".request.json"
_REPLY = ".reply.json"


class ControlError(RuntimeError):
    """The runner refused or failed the request, or no runner answered; the message says why."""


@dataclass(frozen=True)
class Request:
    """One request found in the control folder."""

    path: Path
    action: str
    name: str
    timeout: float

    @property
    def reply_path(self) -> Path:
        return self.path.with_name(self.path.name.removesuffix(_REQUEST) + _REPLY)


def _write_atomically(path: Path, data: dict[str, object]) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(data) + "\n", encoding="utf-8")
    staging.replace(path)  # the other side never reads half a file


# --------------------------------------------------------------------------- the command's side


def send(run_dir: Path, action: str, name: str, *, timeout: float, runner_alive: Callable[[], bool]) -> str:
    """Ask the runner of ``run_dir`` to do ``action`` to ``name``; its answer, once done.

    Raises ``ControlError`` with the runner's message if it failed, or if the runner exits or
    does not answer within ``timeout`` seconds (plus a margin for it to notice the request).
    """
    if action not in ACTIONS:
        raise ControlError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    folder = run_dir / CONTROL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    request = Request(folder / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}{_REQUEST}", action, name, timeout)
    _write_atomically(request.path, {"action": action, "name": name, "timeout": timeout})
    deadline = time.monotonic() + timeout + 30.0  # the runner may be busy with an earlier request
    try:
        while True:
            if request.reply_path.exists():
                reply = json.loads(request.reply_path.read_text(encoding="utf-8"))
                if not reply.get("ok"):
                    raise ControlError(str(reply.get("message", "the runner gave no reason")))
                return str(reply.get("message", "done"))
            if not runner_alive():
                raise ControlError("the stack runner exited before answering (see `stack status`)")
            if time.monotonic() >= deadline:
                raise ControlError(
                    f"the stack runner did not answer within {timeout + 30:.0f} s; "
                    "is it still starting? (`stack status`, `stack logs`)"
                )
            time.sleep(0.1)
    finally:
        request.path.unlink(missing_ok=True)
        request.reply_path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the runner's side


def pending(run_dir: Path) -> list[Request]:
    """The requests waiting in ``run_dir``, oldest first (unreadable ones are dropped)."""
    folder = run_dir / CONTROL_DIR
    found: list[Request] = []
    for path in sorted(folder.glob(f"*{_REQUEST}")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found.append(Request(path, str(data["action"]), str(data["name"]), float(data["timeout"])))
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
    return found


def perform(stack: Control, action: str, name: str, timeout: float) -> str:
    """Do one request with the ``Stack`` methods; the sentence the command prints."""
    before = stack.pid(name)
    if action == "stop":
        stack.stop_service(name)
        was = f" (was pid {before})" if before else " (it was not running)"
        return f"{name} stopped{was}; it stays down until `stack start {name}`"
    if action == "start":
        stack.start_service(name, timeout=timeout)
        return f"{name} started (pid {stack.pid(name)})"
    if action == "restart":
        stack.restart_service(name, timeout=timeout)
        return f"{name} restarted (pid {before or '-'} → {stack.pid(name)})"
    if action == "pause":
        stack.pause(name)
        return f"{name} paused (pid {before}): it answers nothing until `stack resume {name}`"
    if action == "resume":
        stack.resume(name)
        return f"{name} resumed (pid {before})"
    raise ControlError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")


def serve_requests(stack: Control) -> None:
    """Carry out every waiting request in order and answer each (called by ``Stack.watch``)."""
    for request in pending(stack.run_dir):
        try:
            message = perform(stack, request.action, request.name, request.timeout)
        except (RuntimeError, OSError) as exc:  # StackError, KafkaStartError, ControlError, ...
            reply: dict[str, object] = {"ok": False, "message": str(exc) or type(exc).__name__}
        else:
            reply = {"ok": True, "message": message}
        request.path.unlink(missing_ok=True)
        if request.path.parent.is_dir():
            _write_atomically(request.reply_path, reply)


def clear_requests(run_dir: Path) -> None:
    """Drop requests and replies left by an earlier runner (at start)."""
    folder = run_dir / CONTROL_DIR
    for path in folder.iterdir() if folder.is_dir() else []:
        if path.is_file():
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the stack's side


class Control(StackBase):
    """One process at a time (labs, ``stack stop|start|...``, chaos tests), for a ``Stack``."""

    def stop_service(self, name: str, timeout: float | None = None) -> None:
        """Stop a service, a broker (``"kafka"``, ``"kafka-2"``) or ``"smtp"`` (SIGTERM, then
        SIGKILL after ``timeout``).

        It stays down (the watcher does not restart it) until ``start_service(name)``.
        """
        self._known(name)
        grace = self.stop_timeout if timeout is None else timeout
        self._paused.discard(name)  # stopping resumes it first (SIGCONT after SIGTERM)
        if name in self._kafka:
            managed = self._kafka[name]
            managed.wanted = False
            managed.restarts = Restarts()
            managed.broker.stop(max(grace, 20.0))  # a clean broker shutdown takes longer
        elif name == "smtp":
            self._smtp_wanted = False
            self._smtp_restarts = Restarts()
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
        """Start a stopped service, broker or ``"smtp"``; with ``wait_ready`` return once it serves.

        A service is migrated first; ``migrate=False`` skips that (a restart of a service whose
        database is at head: faster). ``env_overrides`` change the service's environment from
        now on (e.g. a lab restarts room with fault injection on); later restarts by the watcher
        keep them. Kafka is always waited for (its clients need it registered, not just bound).
        """
        self._known(name)
        if name in self._kafka:
            self._start_kafka(name, timeout)
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

    def _start_kafka(self, name: str, timeout: float) -> None:
        managed = self._kafka[name]
        if managed.broker.is_running:
            raise StackError(f"{name} is already running (pid {managed.broker.pid})")
        managed.wanted = False  # the watcher must not start it meanwhile
        with self._blocking():
            # A node of a cluster registers once a majority of the quorum runs: with the
            # others down too, start them as well (`stack start kafka-1`, then kafka-2 …).
            managed.broker.start(timeout=timeout)
        managed.restarts = Restarts()
        managed.started_at = time.monotonic()
        managed.given_up = False
        managed.wanted = True

    def _start_smtp(self, timeout: float | None) -> None:
        if self.smtp.running:
            raise StackError(f"smtp is already running (pid {self.smtp.pid})")
        if port_in_use(self.smtp_port):
            raise PortInUseError(f"port {self.smtp_port} (smtp sink) is already in use on {HOST}")
        self._smtp_restarts = Restarts()
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
        svc.restarts = Restarts()
        if migrate and svc.primary:  # the others share the first instance's database
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
                raise StackError(
                    f"{self._not_ready_report([svc], timeout)}\n({name} keeps starting: `make status` "
                    f"shows when it serves; `uv run stack stop {name}` ends it)"
                )
            self._pause_or_interrupt(0.2)
