"""Alembic, written once: each service's ``migrations/env.py`` is two lines calling this.

Every service keeps its own migration history and its own database; this module only
removes the boilerplate of running it (online, with SQLite batch mode so ALTERs work).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool


def run_alembic_env(target_metadata: MetaData, default_url: str) -> None:
    """Body of a service's ``env.py``: migrate ``sqlalchemy.url`` (or the service's own DB)."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or default_url
    _ensure_sqlite_dir(url)
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # WAL is a property of the file: set it here, once, while nothing else has it open.
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def upgrade_to_head(script_location: Path, database_url: str) -> None:
    """Apply every pending migration of one service (what ``python -m <svc> migrate`` does)."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", database_url)
    command.upgrade(config, "head")


def _ensure_sqlite_dir(url: str) -> None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
