"""The two tables messaging adds to a service's own database.

``outbox``: events written in the domain transaction, waiting for the relay.
``processed_events``: which events each consumer has already applied (dedup).

The column lists are functions so the SQLAlchemy tables and the Alembic migration
(``migrations.py``) are built from one definition and can't drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.sql.schema import SchemaItem

OUTBOX = "outbox"
PROCESSED_EVENTS = "processed_events"
OUTBOX_UNPUBLISHED_INDEX = "ix_outbox_published_at_id"

# BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
_Id = BigInteger().with_variant(Integer(), "sqlite")


def outbox_schema() -> list[SchemaItem]:
    """Fresh columns and constraints of ``outbox`` (a Column can belong to one table only)."""
    return [
        # The publish order: the relay sends rows by ascending id.
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("key", String(255), nullable=False),
        Column("event_type", String(100), nullable=False),
        # Avro bytes, encoded (and so validated) when the row was written.
        Column("payload", LargeBinary, nullable=False),
        # The envelope headers, as {name: text}.
        Column("headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, default=0, server_default="0"),
        Column("last_error", Text, nullable=True),
        UniqueConstraint("event_id", name="uq_outbox_event_id"),
    ]


def processed_events_schema() -> list[SchemaItem]:
    """Fresh columns and constraints of ``processed_events``."""
    return [
        Column("consumer", String(200), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    ]


@dataclass(frozen=True)
class MessagingTables:
    """The outbox and processed-events tables of one service."""

    outbox: Table
    processed_events: Table


def messaging_tables(metadata: MetaData) -> MessagingTables:
    """Define (once) the messaging tables on a service's own ``metadata``."""
    if OUTBOX in metadata.tables:
        return MessagingTables(metadata.tables[OUTBOX], metadata.tables[PROCESSED_EVENTS])
    outbox = Table(OUTBOX, metadata, *outbox_schema())
    # The relay's query: unpublished rows (published_at IS NULL) in id order.
    Index(OUTBOX_UNPUBLISHED_INDEX, outbox.c.published_at, outbox.c.id)
    processed = Table(PROCESSED_EVENTS, metadata, *processed_events_schema())
    return MessagingTables(outbox, processed)
