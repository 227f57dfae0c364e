"""A PostgreSQL server for the test session and the dev stack, as a child process.

The binaries are the system's (Debian: ``/usr/lib/postgresql/<version>/bin``, from
``apt-get install postgresql``; elsewhere ``pg_config --bindir`` or ``postgres`` on PATH).
One cluster, one data folder, one port on 127.0.0.1 (no Unix socket), ``trust`` login for the
superuser ``postgres``: a local development server, never a production setup. Each service
gets a database of its own on it (``create_database``), as it has a SQLite file of its own
otherwise.

Dying with the parent: ``postgres`` runs in the *foreground* as the direct child of the
process that started it (``pg_ctl start`` would daemonize it out of reach), started through
``stack.procs.spawn``. As root it must run as another user (``initdb`` and ``postgres`` refuse
root), and changing the user clears a parent-death signal, so the switch is made by
``setpriv --pdeathsig=KILL``, which execs ``postgres`` in place and arms the signal again after
the switch (``runuser`` would fork and leave ``postgres`` a grandchild). When the postmaster
is killed its backends notice and exit by themselves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Self

import psycopg
from psycopg import sql

from stack.ports import HOST
from stack.procs import pid_alive, run, signal_group, spawn, tail

__all__ = [
    "DEBIAN_PREFIX",
    "INSTALL_HINT",
    "PostgresError",
    "PostgresServer",
    "cleanup_stale_dirs",
    "ensure_binaries",
    "find_bin_dir",
]

DEBIAN_PREFIX = Path("/usr/lib/postgresql")
INSTALL_HINT = "install PostgreSQL's server (Debian/Ubuntu: apt-get install -y postgresql)"
SUPERUSER = "postgres"
RUN_AS = "postgres"  # the system user the server runs as when we are root (Debian's package makes it)
EPHEMERAL_PREFIX = "stack-pg-"
OWNER_FILE = "owner.pid"
LOG_TAIL_LINES = 30

Say = Callable[[str], None]


class PostgresError(RuntimeError):
    """PostgreSQL is missing or could not start; the message says what to do."""


# --------------------------------------------------------------------------- binaries


def find_bin_dir() -> Path | None:
    """Where ``initdb`` and ``postgres`` are: ``$STACK_PG_BIN``, Debian's newest, pg_config, PATH."""
    candidates: list[Path] = []
    if configured := os.environ.get("STACK_PG_BIN"):
        candidates.append(Path(configured))
    if DEBIAN_PREFIX.is_dir():
        versions = sorted(
            (p for p in DEBIAN_PREFIX.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates.extend(p / "bin" for p in versions)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
            if done.returncode == 0 and done.stdout.strip():
                candidates.append(Path(done.stdout.strip()))
    if on_path := shutil.which("postgres"):
        candidates.append(Path(on_path).resolve().parent)
    for bin_dir in candidates:
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir
    return None


def ensure_binaries(say: Say | None = None) -> Path:
    """The server's bin folder; installs Debian's ``postgresql`` first when missing and root with apt."""
    found = find_bin_dir()
    if found is not None:
        return found
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise PostgresError(f"no PostgreSQL server binaries (initdb, postgres) found: {INSTALL_HINT}")
    if say is not None:
        say("PostgreSQL not found: apt-get install -y postgresql (once) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "postgresql"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        if done.returncode != 0:
            raise PostgresError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    found = find_bin_dir()
    if found is None:
        raise PostgresError(f"apt-get installed postgresql but no server binaries were found: {INSTALL_HINT}")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    """``command`` as it must be run: as ``postgres`` when we are root (see the module docstring)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        raise PostgresError("running as root needs setpriv (util-linux) to start PostgreSQL as 'postgres'")
    try:
        import pwd

        pwd.getpwnam(RUN_AS)
    except KeyError:
        raise PostgresError(
            f"as root, PostgreSQL must run as the '{RUN_AS}' user, which does not exist: {INSTALL_HINT}"
        ) from None
    return [
        "setpriv",
        f"--reuid={RUN_AS}",
        f"--regid={RUN_AS}",
        "--init-groups",
        "--pdeathsig=KILL",
        "--",
        *command,
    ]


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, RUN_AS, RUN_AS)
    path.chmod(0o700)


def _reachable_by_server_user(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    code, _ = run(_as_server_user(["test", "-w", str(path), "-a", "-x", str(path)]), timeout=30)
    return code == 0


# --------------------------------------------------------------------------- the server


class PostgresServer:
    """One PostgreSQL cluster on ``127.0.0.1:port``, data in ``data_dir`` (created on first start).

    ``durable=False`` (tests) turns off fsync and friends: fast, and a crash of the machine may
    lose the data, which a throwaway cluster does not mind. ``remove_on_stop`` deletes the
    folder holding ``data_dir`` at ``stop()`` (``ephemeral()`` sets both).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        bin_dir: Path | None = None,
        log_file: Path | None = None,
        durable: bool = True,
        remove_on_stop: bool = False,
        say: Say | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.log_file = Path(log_file) if log_file is not None else self.data_dir.parent / "postgres.log"
        self.durable = durable
        self.remove_on_stop = remove_on_stop
        self._bin_dir = bin_dir
        self._say = say
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._lock = threading.RLock()

    @classmethod
    def ephemeral(cls, port: int, *, say: Say | None = None) -> Self:
        """A throwaway cluster in a new temp folder (removed at ``stop()``, or by the next session
        that finds its owner dead): ``postgres`` must reach it, so not under pytest's 0700 tmp."""
        cleanup_stale_dirs()
        base = Path(tempfile.mkdtemp(prefix=EPHEMERAL_PREFIX))
        (base / OWNER_FILE).write_text(str(os.getpid()))
        _give_to_server_user(base)
        return cls(base / "data", port, durable=False, remove_on_stop=True, say=say)

    # -- public API ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def user(self) -> str:
        return SUPERUSER

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.is_running and self._proc is not None else None

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"{driver}://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def start(self, timeout: float = 120.0) -> None:
        """``initdb`` on first use, then run ``postgres``; returns once it accepts connections."""
        with self._lock:
            if self.is_running:
                return
            bin_dir = self._bin_dir or ensure_binaries(self._say)
            deadline = time.monotonic() + timeout
            self._initdb(bin_dir, deadline)
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with self.log_file.open("ab") as log:
                self._log_offset = log.tell()
                self._proc = spawn(_as_server_user(self._command(bin_dir)), stdout=log)
            self._wait_ready(deadline, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: clients disconnected, work rolled back), SIGKILL after ``timeout``."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    signal_group(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            if self.remove_on_stop:
                shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection (autocommit) to ``database``."""
        return psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname=database, autocommit=True, connect_timeout=10
        )

    def create_database(self, name: str) -> str:
        """Create ``name`` unless it exists; its URL."""
        with self.connect() as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def create_databases(self, names: Iterable[str]) -> dict[str, str]:
        """``create_database`` for each name: {name: URL}."""
        return {name: self.create_database(name) for name in names}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _command(self, bin_dir: Path) -> list[str]:
        settings: Mapping[str, str] = {
            "listen_addresses": HOST,
            "unix_socket_directories": "",  # TCP only: no socket path to choose or to clash on
            "max_connections": "300",  # six services' pools, consumers and tests' engines
            **(
                {}
                if self.durable
                else {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
            ),
        }
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        return [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), *options]

    def _initdb(self, bin_dir: Path, deadline: float) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        parent = self.data_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and parent.stat().st_uid == 0:
            _give_to_server_user(parent)
        if not _reachable_by_server_user(parent):
            raise PostgresError(
                f"PostgreSQL runs as '{RUN_AS}', which cannot reach {parent}: put the run folder where "
                f"that user can (every parent folder searchable), e.g. RUN_DIR=/var/tmp/stack"
            )
        command = [str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust"]
        command += ["-E", "UTF8", "--locale=C", *([] if self.durable else ["--no-sync"])]
        if self._say is not None:
            self._say(f"initdb {self.data_dir}")
        try:
            code, output = run(_as_server_user(command), timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise PostgresError(f"initdb did not finish in time ({self.data_dir})") from None
        if code != 0:
            raise PostgresError(f"initdb failed (exit {code}):\n{output[-3000:]}")

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        proc = self._proc
        assert proc is not None
        while True:
            code = proc.poll()
            if code is not None:
                self._proc = None
                raise PostgresError(
                    f"postgres exited with code {code} during start-up (log: {self.log_file}):\n"
                    f"{tail(self.log_file, LOG_TAIL_LINES, self._log_offset)}"
                )
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = str(exc).strip()
            if time.monotonic() > deadline:
                self.kill()
                raise PostgresError(
                    f"postgres not accepting connections on {HOST}:{self.port} within {timeout:.0f} s "
                    f"({last}); log {self.log_file}:\n{tail(self.log_file, LOG_TAIL_LINES, self._log_offset)}"
                )
            time.sleep(0.2)


def cleanup_stale_dirs(tmp: Path | None = None) -> list[Path]:
    """Remove the temp folders of ephemeral clusters whose owner and postmaster are both gone
    (a session killed with ``kill -9`` cannot remove its own)."""
    removed: list[Path] = []
    for base in Path(tmp or tempfile.gettempdir()).glob(f"{EPHEMERAL_PREFIX}*"):
        try:
            owner = int((base / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or being set up right now
        if pid_alive(owner) or _postmaster_alive(base / "data"):
            continue
        shutil.rmtree(base, ignore_errors=True)
        removed.append(base)
    return removed


def _postmaster_alive(data_dir: Path) -> bool:
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        return pid_alive(int(first))
    except (OSError, ValueError):
        return False
