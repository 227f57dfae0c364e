"""Database faults for tests, on SQLite and PostgreSQL alike: a table that refuses inserts (a
disk or constraint failure at the worst moment), and writes held by an outside connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from common.db import Database

REFUSAL = "disk says no"


def refuse_inserts(db: Database, table: str) -> None:
    """From now on every INSERT into ``table`` fails inside the database (``allow_inserts`` undoes)."""
    with db.transaction() as session:
        if db.is_sqlite:
            session.execute(
                text(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
                )
            )
            return
        session.execute(
            text(
                f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql "
                f"AS $$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$"
            )
        )
        session.execute(
            text(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
            )
        )


def allow_inserts(db: Database, table: str) -> None:
    """Undo ``refuse_inserts``."""
    with db.transaction() as session:
        if db.is_sqlite:
            session.execute(text(f"DROP TRIGGER refuse_{table}"))
            return
        session.execute(text(f"DROP TRIGGER refuse_{table} ON {table}"))
        session.execute(text(f"DROP FUNCTION refuse_{table}()"))


@contextmanager
def writes_held(database_url: str, *tables: str) -> Iterator[None]:
    """Another connection holds the write lock and does not let go until the block ends.

    SQLite: ``BEGIN IMMEDIATE`` on the file (like ``sqlite3 room.db 'BEGIN IMMEDIATE'`` in a
    terminal): every writer waits, readers don't. PostgreSQL: ``LOCK TABLE ... IN EXCLUSIVE
    MODE`` on ``tables``: writers of those tables wait, readers don't.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        import sqlite3

        other = sqlite3.connect(url.database or "", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            yield
            other.execute("ROLLBACK")
        finally:
            other.close()
        return
    if not tables:
        raise ValueError("name the tables whose writes to hold on PostgreSQL")
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
    ) as conn:
        names = sql.SQL(", ").join(sql.Identifier(table) for table in tables)
        conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(names))
        yield
        conn.rollback()
