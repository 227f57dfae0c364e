"""Supervision: the loop that keeps a running stack running (``stack up`` after green).

Every 0.5 s it carries out ``stack stop|start|...`` requests (``stack.control``), notices a
process that died, reports its last log lines and restarts it after a backoff (``Restarts``:
1, 2, 4 … 30 s, reset once it ran a minute); every 3 s it reports readiness changes.
"""

from __future__ import annotations

import time

from stack.base import ManagedBroker, ManagedService, Restarts
from stack.control import Control, serve_requests
from stack.kafka import KafkaSetupError, KafkaStartError
from stack.ports import port_in_use, probe
from stack.procs import tail

__all__ = ["Supervision"]


class Supervision(Control):
    """The watch loop of a ``Stack``."""

    def watch(self, restart: bool = True, interval: float = 0.5) -> None:
        """Supervise until ``request_stop()``: report crashes, restart with backoff, report readiness."""
        last_probe = 0.0
        while not self._stop_requested.wait(interval):
            serve_requests(self)  # `stack stop|start|restart|pause|resume` from other terminals
            now = time.monotonic()
            for svc in self._services.values():
                self._supervise_service(svc, now, restart)
            self._supervise_smtp(now, restart)
            for managed in self._kafka.values():
                self._supervise_kafka(managed, now, restart)
            if self.databases.supervise(now, restart, self._db_restarts):  # --db postgres
                self._write_state()
            if now - last_probe >= 3.0:
                last_probe = now
                self._report_readiness_changes()

    def _supervise_service(self, svc: ManagedService, now: float, restart: bool) -> None:
        if not svc.wanted:
            return
        restarts = svc.restarts = svc.restarts or Restarts()
        if svc.serving and not svc.serve.running:
            code = svc.serve.returncode
            svc.serving = False
            svc.ready = None
            log_path = svc.serve.log_path
            self._say(f"{svc.name} exited unexpectedly (code {code}); last lines of {log_path}:")
            self._say_block(svc.serve.tail(10))
            if restart:
                delay = restarts.crashed(now - svc.serve.started_at)
                self._say(f"restarting {svc.name} in {delay:.0f} s")
            else:
                svc.wanted = False
        if not svc.serving and restarts.next_at is not None and now >= restarts.next_at:
            restarts.next_at = None
            port = self.port(svc.name)
            if port_in_use(port):
                self._say(f"cannot restart {svc.name}: port {port} is taken; retrying")
                restarts.crashed(0.0)
                return
            self._say(f"restarting {svc.name} (attempt {restarts.crashes})")
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

    def _supervise_kafka(self, managed: ManagedBroker, now: float, restart: bool) -> None:
        broker, restarts = managed.broker, managed.restarts
        if broker.is_running or not managed.wanted or managed.given_up:
            return
        if restarts.next_at is None:
            self._say(f"{broker.name} exited unexpectedly; last lines of {broker.log_file}:")
            self._say_block(tail(broker.log_file, 10))
            if not restart:
                managed.given_up = True  # report once
                return
            delay = restarts.crashed(now - managed.started_at)
            self._say(f"restarting {broker.name} in {delay:.0f} s")
            return
        if now >= restarts.next_at:
            try:
                with self._blocking():
                    broker.start(timeout=60)
            except (KafkaSetupError, KafkaStartError, OSError) as exc:
                delay = restarts.crashed(0.0)
                self._say(f"{broker.name} did not restart ({type(exc).__name__}); retrying in {delay:.0f} s")
                return
            restarts.next_at = None
            managed.started_at = time.monotonic()
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
