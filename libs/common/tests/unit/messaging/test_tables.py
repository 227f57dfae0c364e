"""The tables and the Alembic migration come from one definition."""

from __future__ import annotations

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import MetaData, create_engine, inspect

from common.messaging import ALL_TOPICS, TOPIC_FOR_EVENT, dlq_topic, messaging_tables, topic_for
from common.messaging.migrations import create_messaging_tables, drop_messaging_tables


def _describe(engine) -> dict:
    inspector = inspect(engine)
    return {
        table: {
            "columns": {c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)},
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            # PostgreSQL also lists the index behind each unique constraint: those are in "unique".
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]))
                for i in inspector.get_indexes(table)
                if not i.get("duplicates_constraint")
            ),
            "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
        }
        for table in sorted(inspector.get_table_names())
    }


def test_migration_creates_what_the_metadata_declares(new_database) -> None:
    from_metadata = create_engine(new_database("a"))
    metadata = MetaData()
    messaging_tables(metadata)
    metadata.create_all(from_metadata)

    from_migration = create_engine(new_database("b"))
    with from_migration.begin() as conn:
        create_messaging_tables(Operations(MigrationContext.configure(conn)))

    expected = _describe(from_metadata)
    assert set(expected) == {"outbox", "processed_events"}
    assert expected["outbox"]["indexes"] == [("ix_outbox_published_at_id", ("published_at", "id"))]
    assert expected["outbox"]["unique"] == [("event_id",)]
    assert expected["processed_events"]["pk"] == ["consumer", "event_id"]
    assert _describe(from_migration) == expected

    with from_migration.begin() as conn:
        drop_messaging_tables(Operations(MigrationContext.configure(conn)))
    assert inspect(from_migration).get_table_names() == []
    from_metadata.dispose()
    from_migration.dispose()


def test_tables_are_defined_once_per_metadata() -> None:
    metadata = MetaData()
    assert messaging_tables(metadata) == messaging_tables(metadata)


def test_topic_catalogue() -> None:
    assert topic_for("UserRegistered") == "auth.users"
    assert topic_for("LicenseActivated") == "auth.licenses"
    assert topic_for("MemberUpdated") == "member.members"
    # Created and Cancelled share a topic so one reservation's events stay in order.
    assert topic_for("ReservationCreated") == topic_for("ReservationCancelled") == "room.reservations"
    assert ALL_TOPICS == ("auth.licenses", "auth.users", "member.members", "room.reservations")
    assert set(TOPIC_FOR_EVENT.values()) == set(ALL_TOPICS)
    assert dlq_topic("room.reservations") == "room.reservations.dlq"
