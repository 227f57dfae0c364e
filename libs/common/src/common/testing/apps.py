"""Run a service app in-process for tests: migrated real database, lifespan, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import httpx
from fastapi import FastAPI
from sqlalchemy import create_engine, inspect

from common.migrations import upgrade_to_head
from common.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def migrated(settings: S, migrations_dir: Path) -> S:
    """Apply the service's migrations to ``settings.database_url``; return the settings."""
    upgrade_to_head(migrations_dir, settings.database_url)
    return settings


def table_names(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def journal_mode(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return str(connection.exec_driver_sql("PRAGMA journal_mode").scalar()).lower()
    finally:
        engine.dispose()


def management_client(app: FastAPI) -> httpx.AsyncClient:
    """A client of ``app``'s management port app (``/metrics``, docs), in-process."""
    transport = httpx.ASGITransport(app=app.state.management)
    return httpx.AsyncClient(transport=transport, base_url="http://management")


@asynccontextmanager
async def running(
    create_app: Callable[[S], FastAPI], settings: S, prepare: Callable[[FastAPI], None] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan started (relay, consumers), and a client talking to it in-process.

    ``prepare`` runs on the app before it starts, e.g. ``TestUsers().trust``.
    """
    app = create_app(settings)
    if prepare is not None:
        prepare(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def check_service_boots(
    create_app: Callable[[S], FastAPI], settings: S, migrations_dir: Path, *, uses_kafka: bool = True
) -> None:
    """The smoke test every service runs: migrations create the messaging tables, the app starts
    with its workers, is live, and is ready (database, and Kafka when it uses it)."""
    migrated(settings, migrations_dir)
    assert {"outbox", "processed_events", "alembic_version"} <= table_names(settings.database_url)
    if settings.database_url.startswith("sqlite"):
        # Set by the migration while nothing else has the file open (switching later needs an
        # exclusive lock, which a running consumer or reaper thread may be holding).
        assert journal_mode(settings.database_url) == "wal"
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://service") as client,
    ):
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert checks["database"]["ok"]
        assert ("kafka" in checks) == uses_kafka
        # Metrics are on the management port, not on the service's own.
        assert (await client.get("/metrics")).status_code == 404
        async with management_client(app) as management:
            metrics = await management.get("/metrics")
        assert "http_requests_total" in metrics.text
