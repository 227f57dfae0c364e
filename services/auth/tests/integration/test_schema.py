"""The hand-written migrations create exactly the tables the ORM models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from auth_service.adapters.orm import metadata
from common.testing.apps import migrated

from .conftest import MIGRATIONS, NewDatabase, make_settings


def test_migrations_match_the_models(tmp_path: Path, new_database: NewDatabase) -> None:
    settings = migrated(make_settings(tmp_path, new_database("auth")), MIGRATIONS)
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert differences == []
