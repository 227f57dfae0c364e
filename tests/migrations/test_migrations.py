"""Every service's Alembic history, on SQLite and on PostgreSQL: ``upgrade head`` builds exactly
what the ORM declares, ``downgrade base`` takes all of it away again, and a second ``upgrade
head`` works on what the downgrade left (so each step's ``downgrade`` really undoes it)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect

SERVICES = ("gateway", "auth", "member", "room", "inventory", "notification")


def _alembic(service: str, url: str) -> Config:
    package = importlib.import_module(f"{service}_service")
    config = Config()
    config.set_main_option("script_location", str(Path(package.__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _metadata(service: str) -> MetaData:
    orm = importlib.import_module(f"{service}_service.adapters.orm")
    metadata: MetaData = orm.metadata
    return metadata


def _drift(url: str, metadata: MetaData) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_upgrade_matches_the_models_and_downgrade_undoes_every_step(service: str, new_database) -> None:
    url = new_database(service)
    config = _alembic(service, url)

    command.upgrade(config, "head")
    assert {"outbox", "processed_events"} <= _tables(url)
    assert _drift(url, _metadata(service)) == []

    command.downgrade(config, "base")
    assert _tables(url) <= {"alembic_version"}

    command.upgrade(config, "head")
    assert _drift(url, _metadata(service)) == []
