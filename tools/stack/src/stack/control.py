"""``stack stop|start|restart|pause|resume <name>``: control a running stack from any terminal.

The command drops a request file into ``<run_dir>/control/``; the runner's supervision loop
(``Stack.watch``, every 0.5 s) picks it up, carries it out with the same ``Stack`` methods the
tests use, and writes the reply beside it. Files rather than a socket: nothing more to bind,
visible with ``ls``, and a runner that dies before answering is noticed (its pid is watched).
One request at a time: the loop does them in order of arrival.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stack.runner import Stack

__all__ = ["ACTIONS", "CONTROL_DIR", "ControlError", "Request", "clear_requests", "send", "serve_requests"]

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


def perform(stack: Stack, action: str, name: str, timeout: float) -> str:
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


def serve_requests(stack: Stack) -> None:
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
