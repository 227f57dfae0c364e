"""Database access: one engine per service, a unit of work per transaction.

SQLite (the default) is tuned for a service with a request thread pool *and* consumer
threads: WAL so readers never block the writer, a busy timeout so writers queue instead of
failing, and ``BEGIN IMMEDIATE`` for write transactions so two writers can't both read and
then deadlock upgrading their locks. PostgreSQL needs none of this.

Time: no transaction waits for a lock longer than its request can. Inside a request (a
deadline is set, ``common.context``) the lock wait is ``min(lock_timeout_s, remaining budget)``
(SQLite ``busy_timeout``, PostgreSQL ``SET LOCAL lock_timeout`` and ``statement_timeout``), set
anew at every ``BEGIN``; a lock not had in that time is a 503 problem (``DatabaseBusy``), or a
504 when the budget is what ran out, and nothing is stored. A write transaction also refuses to
commit once the budget is spent: the caller has given up, so the work must not be done behind
its back (its retry, with the same idempotency key, does it properly). Background work (no
deadline) waits up to ``background_lock_timeout_s``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from sqlalchemy import DateTime, Dialect, Engine, TypeDecorator, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from common.context import current_deadline
from common.errors import DeadlineExceeded, ProblemError
from common.tracing import span

_SQLITE_BUSY = 5  # SQLITE_BUSY: a lock was not had within busy_timeout
_PG_LOCK_NOT_AVAILABLE, _PG_QUERY_CANCELED = "55P03", "57014"  # lock_timeout, statement_timeout


class DatabaseBusy(ProblemError):
    """A lock was not had within what the request could wait (503; nothing was stored)."""

    status, title, slug = 503, "Service Unavailable", "database-busy"

    def __init__(self) -> None:
        super().__init__(
            "The database is busy; nothing was stored. Retry (with the same Idempotency-Key).",
            headers={"Retry-After": "1"},
        )


class Database:
    """An engine and its session factory; ``transaction()`` is the unit of work."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        lock_timeout_s: float = 2.0,
        background_lock_timeout_s: float = 15.0,
    ) -> None:
        self.url = url
        self.lock_timeout_s = lock_timeout_s
        self.background_lock_timeout_s = background_lock_timeout_s
        self.engine: Engine = create_engine(url, echo=echo, pool_pre_ping=not url.startswith("sqlite"))
        if self.is_sqlite:
            _tune_sqlite(self.engine, self)
        elif self.is_postgres:
            _bound_postgres(self.engine, self)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit everything done in the block, or nothing if it raises.

        Inside a request: waits for locks no longer than the budget allows, and refuses to
        commit (``DeadlineExceeded``, rolled back) once the budget is spent.
        """
        with _db_span(self, "db transaction"), _lock_problems(), self._sessions() as session, session.begin():
            yield session
            deadline = current_deadline()
            if deadline is not None and deadline.expired:
                raise DeadlineExceeded(
                    "The request's time budget ran out before its work could be stored; nothing was."
                )

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session that takes no write lock (SQLite: deferred transaction)."""
        with _db_span(self, "db read"), _lock_problems(), self._read_sessions() as session, session.begin():
            yield session

    def lock_wait_s(self) -> float:
        """How long the transaction beginning now may wait for a lock (see the module docstring)."""
        deadline = current_deadline()
        if deadline is None:
            return self.background_lock_timeout_s
        remaining = deadline.remaining()
        if remaining <= 0:
            raise DeadlineExceeded("The request's time budget ran out before its database work began.")
        return min(self.lock_timeout_s, remaining)

    def ping(self) -> None:
        """Raise if the database can't answer a trivial query."""
        with self.read() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware, on every database.

    SQLite keeps no offset: values go in as UTC and come back with ``UTC`` attached, so stored
    text also sorts in time order (reapers compare ``expires_at <= now`` in SQL). Naive
    datetimes are refused: an unknown zone is a bug, not a default.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware (UTC) timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@contextmanager
def _db_span(db: Database, name: str) -> Iterator[None]:
    """A span for the transaction, inside a traced request or event only: a background loop's
    rounds (relays, reapers) would otherwise each start a trace of their own."""
    if not trace.get_current_span().is_recording():
        yield
        return
    with span(name, attributes={"db.system": "sqlite" if db.is_sqlite else "postgresql"}):
        yield


@contextmanager
def _lock_problems() -> Iterator[None]:
    """Inside a request, a lock not had in time becomes a 503 (or 504) problem, not a 500."""
    try:
        yield
    except OperationalError as exc:
        deadline = current_deadline()
        if deadline is None or not _is_lock_wait(exc):
            raise  # background work handles (and retries) its own errors
        if deadline.expired:
            raise DeadlineExceeded("The request's time budget ran out waiting for the database.") from exc
        raise DatabaseBusy() from exc


def _is_lock_wait(exc: OperationalError) -> bool:
    driver_error = exc.orig
    if getattr(driver_error, "sqlite_errorcode", None) == _SQLITE_BUSY:
        return True
    if "database is locked" in str(driver_error):  # older sqlite3 modules carry no code
        return True
    sqlstate = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)
    return sqlstate in (_PG_LOCK_NOT_AVAILABLE, _PG_QUERY_CANCELED)


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))  # 0 would mean "don't wait at all" / "no limit"


def _bound_postgres(engine: Engine, db: Database) -> None:
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # SET LOCAL lasts until this transaction ends, so a pooled connection keeps no budget.
        wait = _milliseconds(db.lock_wait_s())
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {wait}")
        if current_deadline() is not None:  # no statement outlives the request either
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {wait}")


def _tune_sqlite(engine: Engine, db: Database) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see the "begin" hook).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # The busy timeout first, so nothing below fails at once on a lock another thread holds.
        cursor.execute(f"PRAGMA busy_timeout={_milliseconds(db.background_lock_timeout_s)}")
        # WAL is stored in the file: switch only once. Switching needs an exclusive lock, and
        # asking on every new connection failed with "database is locked" while a consumer or
        # reaper thread of the same service held the database.
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # The wait for this transaction's lock: a BEGIN IMMEDIATE waits for the write lock here.
        conn.exec_driver_sql(f"PRAGMA busy_timeout={_milliseconds(db.lock_wait_s())}")
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")
