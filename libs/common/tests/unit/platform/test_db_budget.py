"""No database wait longer than the request's budget, and no commit after it is spent.

Every test runs on SQLite and on a real PostgreSQL (``new_database``). The lock is another
connection's: on SQLite a writer holding the database (``BEGIN IMMEDIATE``), on PostgreSQL a
transaction holding the row our write must update (``SELECT ... FOR UPDATE``), so the wait is
bounded by ``busy_timeout`` there and by ``lock_timeout``/``statement_timeout`` here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from common.context import Deadline, deadline_var
from common.db import Database, DatabaseBusy, _bound_postgres
from common.errors import DeadlineExceeded

SLACK_S = 3.0  # generous: a loaded machine may be slow to wake a waiting thread


def _budget_database(url: str) -> Database:
    database = Database(url, lock_timeout_s=30, background_lock_timeout_s=30)
    with database.transaction() as session:
        session.execute(text("CREATE TABLE bookings (id VARCHAR(20) PRIMARY KEY)"))
        session.execute(text("CREATE TABLE rooms (id VARCHAR(20) PRIMARY KEY, booked INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO rooms VALUES ('r1', 0)"))
        if database.is_sqlite:
            session.execute(text("PRAGMA journal_mode=WAL"))
    return database


@pytest.fixture
def db(new_database) -> Iterator[Database]:
    database = _budget_database(new_database("budget"))
    yield database
    database.dispose()


@pytest.fixture
def pg_db(new_postgres_database) -> Iterator[Database]:
    """PostgreSQL only: SQLite has no statement timeout (a lock wait is its only unbounded wait)."""
    database = _budget_database(new_postgres_database("budget"))
    yield database
    database.dispose()


@pytest.fixture
def locked(db: Database) -> Iterator[Any]:
    """Another connection holding what our write needs, and not letting go."""
    if db.is_sqlite:
        other = sqlite3.connect(db.url.removeprefix("sqlite:///"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("ROLLBACK")
        other.close()
        return
    url = make_url(db.url)
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database, autocommit=False
    ) as other:
        other.execute("SELECT id FROM rooms WHERE id = 'r1' FOR UPDATE")
        yield other
        other.rollback()


@pytest.fixture
def budget() -> Iterator[None]:
    token = deadline_var.set(Deadline.after(0.3))
    yield
    deadline_var.reset(token)


def _book(db: Database, booking: str) -> None:
    with db.transaction() as session:
        session.execute(text("INSERT INTO bookings VALUES (:id)"), {"id": booking})
        session.execute(text("UPDATE rooms SET booked = booked + 1 WHERE id = 'r1'"))


def _stored(db: Database) -> list[str]:
    with db.read() as session:
        return [row[0] for row in session.execute(text("SELECT id FROM bookings"))]


def test_a_lock_held_beyond_the_budget_is_a_504_after_the_budget_not_the_busy_timeout(db, locked):
    # Issue 7 fault 2: a 15 s busy timeout inside a 10 s budget stored the booking after the 504.
    token = deadline_var.set(Deadline.after(0.3))
    try:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            _book(db, "b-1")
    finally:
        deadline_var.reset(token)

    assert time.monotonic() - started < 0.3 + SLACK_S  # not the configured 30 s
    assert _stored(db) == []  # WAL (SQLite), MVCC (PostgreSQL): reading needs no lock


def test_the_lock_timeout_bounds_a_request_with_a_longer_budget(db, locked):
    db.lock_timeout_s = 0.2
    token = deadline_var.set(Deadline.after(60))
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseBusy) as busy:
            _book(db, "b-1")
    finally:
        deadline_var.reset(token)

    assert time.monotonic() - started < 0.2 + SLACK_S
    assert busy.value.status == 503
    assert busy.value.headers["Retry-After"] == "1"


def test_background_work_waits_its_own_timeout_and_sees_the_driver_error(db, locked):
    db.background_lock_timeout_s = 0.2

    with pytest.raises(OperationalError, match=r"database is locked|lock timeout"):
        _book(db, "b-1")
    assert _stored(db) == []


def test_a_statement_running_past_the_budget_is_cancelled_with_a_504(pg_db):
    db = pg_db
    token = deadline_var.set(Deadline.after(0.5))
    try:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded), db.transaction() as session:
            session.execute(text("INSERT INTO bookings VALUES ('b-1')"))
            session.execute(text("SELECT pg_sleep(30)"))  # statement_timeout: what is left of 0.5 s
    finally:
        deadline_var.reset(token)

    assert time.monotonic() - started < 0.5 + SLACK_S
    assert _stored(db) == []


def test_a_transaction_whose_budget_ran_out_inside_it_is_not_committed(db):
    token = deadline_var.set(Deadline.after(0.2))
    try:
        with pytest.raises(DeadlineExceeded), db.transaction() as session:
            session.execute(text("INSERT INTO bookings VALUES ('b-1')"))
            deadline = deadline_var.get()
            assert deadline is not None
            while not deadline.expired:  # the work outlived the caller's patience
                time.sleep(0.01)
    finally:
        deadline_var.reset(token)

    assert _stored(db) == []


def test_a_spent_budget_begins_no_transaction(db):
    token = deadline_var.set(Deadline.after(0))
    try:
        with pytest.raises(DeadlineExceeded):
            _book(db, "b-1")
    finally:
        deadline_var.reset(token)

    assert _stored(db) == []


def test_within_the_budget_everything_commits(db, budget):
    _book(db, "b-1")

    assert _stored(db) == ["b-1"]


class _RecordingConnection:
    """Stands in for a PostgreSQL connection at ``BEGIN``: records what would be executed."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def exec_driver_sql(self, statement: str) -> None:
        self.sql.append(statement)


def _postgres_begin(db: Database) -> list[str]:
    # The PostgreSQL hook on an engine that needs no server: only what it executes is checked.
    engine = create_engine("sqlite://")
    _bound_postgres(engine, db)
    connection = _RecordingConnection()
    engine.dispatch.begin(connection)  # type: ignore[arg-type]
    engine.dispose()
    return connection.sql


@pytest.fixture
def unbound() -> Database:
    """Budget settings only: the hook below runs without any server."""
    return Database("sqlite://", lock_timeout_s=30, background_lock_timeout_s=30)


def test_postgres_transactions_get_lock_and_statement_timeouts_within_the_budget(unbound):
    db = unbound
    token = deadline_var.set(Deadline.after(0.5))
    try:
        statements = _postgres_begin(db)  # lock_timeout_s is 30 s: the budget binds
    finally:
        deadline_var.reset(token)

    assert [s.rsplit(" = ", 1)[0] for s in statements] == [
        "SET LOCAL lock_timeout",
        "SET LOCAL statement_timeout",
    ]
    assert all(0 < int(s.rsplit(" = ", 1)[1]) <= 500 for s in statements)


def test_postgres_background_transactions_wait_their_own_lock_timeout(unbound):
    db = unbound
    db.background_lock_timeout_s = 15

    assert _postgres_begin(db) == ["SET LOCAL lock_timeout = 15000"]
