"""Alembic helpers: each service creates the messaging tables in its first migration.

Call ``create_messaging_tables(op)`` in the first revision's ``upgrade()`` and
``drop_messaging_tables(op)`` in its ``downgrade()``; the columns come from ``tables.py``, so
the migration and the SQLAlchemy tables can't disagree.
"""

from __future__ import annotations

from typing import Any

from common.messaging.tables import (
    OUTBOX,
    OUTBOX_UNPUBLISHED_INDEX,
    PROCESSED_EVENTS,
    outbox_schema,
    processed_events_schema,
)


def create_messaging_tables(op: Any) -> None:
    """Create ``outbox`` (with its index) and ``processed_events`` through Alembic's ``op``."""
    op.create_table(OUTBOX, *outbox_schema())
    op.create_index(OUTBOX_UNPUBLISHED_INDEX, OUTBOX, ["published_at", "id"])
    op.create_table(PROCESSED_EVENTS, *processed_events_schema())


def drop_messaging_tables(op: Any) -> None:
    """Undo ``create_messaging_tables``."""
    op.drop_table(PROCESSED_EVENTS)
    op.drop_index(OUTBOX_UNPUBLISHED_INDEX, table_name=OUTBOX)
    op.drop_table(OUTBOX)
