"""The stack's databases: a SQLite file per service (the default), or one PostgreSQL server with
a database per service (``stack up --db postgres``, ``make up DB=postgres``).

SQLite needs nothing from the runner: each service's default URL is a file under
``<run_dir>/data``. PostgreSQL is Debian's server run by ``stack.postgres`` as a child of the
runner (it dies with it however it dies), data in ``<run_dir>/postgres/data`` kept between runs
like Kafka's, log in ``logs/postgres.log``, on a stable port (default: the one after the Kafka
nodes' ports, ``default_postgres_port``: 9094 beside one broker's 9092 and 9093). Before the
migrations run, every service gets a database named after it (created when missing) and its
``<PREFIX>_DATABASE_URL``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from stack.ports import HOST
from stack.postgres import PostgresError, PostgresServer
from stack.procs import tail, write_pid
from stack.services import ServiceSpec

if TYPE_CHECKING:
    from stack.base import Restarts

__all__ = ["ENGINES", "StackDatabases", "default_postgres_port"]

ENGINES = ("sqlite", "postgres")
PID_NAME = "postgres"  # pids/postgres.pid; stack.procs.marker_for knows its command line

Say = Callable[[str], None]


def default_postgres_port(kafka_port: int, kafka_brokers: int = 1) -> int:
    """The port after the Kafka nodes' (node i: client ``port + 2(i-1)``, controller the next)."""
    return kafka_port + 2 * kafka_brokers


class StackDatabases:
    """Where the services of one stack keep their data, and the server when there is one."""

    def __init__(
        self,
        engine: str,
        run_dir: Path,
        *,
        port: int,
        logs_dir: Path,
        pids_dir: Path,
        server: PostgresServer | None = None,
        say: Say | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown database engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.engine = engine
        self.pid_file = pids_dir / f"{PID_NAME}.pid"
        self.server: PostgresServer | None = None
        if engine == "postgres":
            self.server = server or PostgresServer(
                run_dir / "postgres" / "data", port, log_file=logs_dir / "postgres.log", say=say
            )
        self._say = say
        self._wanted = False
        self._started_at = 0.0
        self._given_up = False

    @property
    def port(self) -> int | None:
        """PostgreSQL's port; None on SQLite."""
        return self.server.port if self.server is not None else None

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    def url(self, name: str) -> str | None:
        """The SQLAlchemy URL of service ``name``'s database on the server; None on SQLite."""
        return self.server.url(name) if self.server is not None else None

    def service_env(self, service: ServiceSpec) -> dict[str, str]:
        """``<PREFIX>_DATABASE_URL`` on PostgreSQL; nothing on SQLite (the service's default file)."""
        url = self.url(service.name)
        return {} if url is None else {f"{service.env_prefix}DATABASE_URL": url}

    def ports(self) -> dict[str, int]:
        return {} if self.server is None else {"postgres": self.server.port}

    def state(self) -> dict[str, object]:
        """What the state file records for ``stack status``."""
        return {"db": self.engine, "postgres_port": self.port}

    def summary_row(self) -> tuple[str, str, str, str] | None:
        """The green table's row: ``(name, url, pid, state)``; None on SQLite."""
        if self.server is None:
            return None
        state = "running" if self.server.is_running else "stopped"
        return ("postgres", f"postgresql://{HOST}:{self.server.port}", str(self.pid or "-"), state)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, names: Iterable[str], timeout: float) -> None:
        """Start the server (initdb on first use) and create every service's database."""
        server = self.server
        if server is None:
            return
        self._note(f"starting PostgreSQL on {HOST}:{server.port} (data in {server.data_dir}) …")
        server.start(timeout=timeout)
        self._started_at = time.monotonic()
        self._wanted, self._given_up = True, False
        if server.pid is not None:
            write_pid(self.pid_file, server.pid)
        wanted = list(names)
        server.create_databases(wanted)
        if wanted:
            self._note(f"PostgreSQL databases: {', '.join(wanted)}")

    def stop(self, timeout: float = 30.0) -> None:
        self._wanted = False
        if self.server is None:
            return
        if self.server.is_running:
            self._note("stopping PostgreSQL …")
        self.server.stop(timeout)
        self.pid_file.unlink(missing_ok=True)

    def supervise(self, now: float, restart: bool, restarts: Restarts) -> bool:
        """Restart a crashed server after a backoff (the watch loop); True when it was restarted."""
        server = self.server
        if server is None or server.is_running or not self._wanted or self._given_up:
            return False
        if restarts.next_at is None:
            self._note(f"PostgreSQL exited unexpectedly; last lines of {server.log_file}:")
            for line in tail(server.log_file, 10).splitlines():
                self._note(f"    {line}")
            if not restart:
                self._given_up = True
                return False
            self._note(f"restarting PostgreSQL in {restarts.crashed(now - self._started_at):.0f} s")
            return False
        if now < restarts.next_at:
            return False
        try:
            server.start(timeout=60)
        except (PostgresError, OSError) as exc:
            self._note(f"PostgreSQL did not restart ({exc}); retrying in {restarts.crashed(0.0):.0f} s")
            return False
        restarts.next_at = None
        self._started_at = time.monotonic()
        if server.pid is not None:
            write_pid(self.pid_file, server.pid)
        self._note(f"PostgreSQL restarted (pid {server.pid}); the services reconnect by themselves")
        return True

    def _note(self, message: str) -> None:
        if self._say is not None:
            with contextlib.suppress(Exception):  # reporting never interrupts starting or stopping
                self._say(message)
