"""The hand-written migrations create exactly what the ORM declares (no drift)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect

import room_service
from common.migrations import upgrade_to_head
from room_service.adapters.orm import metadata

MIGRATIONS = Path(room_service.__file__).parent / "migrations"


def describe(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        return {
            table: {
                "columns": {c["name"]: (str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)},
                "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                "fks": sorted(
                    (tuple(f["constrained_columns"]), f["referred_table"])
                    for f in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
                ),
                "checks": sorted(c["sqltext"] for c in inspector.get_check_constraints(table)),
            }
            for table in sorted(inspector.get_table_names())
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


def test_migrations_match_the_metadata(tmp_path: Path) -> None:
    migrated = f"sqlite:///{tmp_path / 'migrated.db'}"
    upgrade_to_head(MIGRATIONS, migrated)
    declared = f"sqlite:///{tmp_path / 'declared.db'}"
    engine = create_engine(declared)
    metadata.create_all(engine)
    engine.dispose()

    expected = describe(declared)
    assert {"rooms", "reservations", "idempotency_keys", "outbox", "processed_events"} <= set(expected)
    assert expected["idempotency_keys"]["pk"] == ["scope", "key"]
    assert describe(migrated) == expected
