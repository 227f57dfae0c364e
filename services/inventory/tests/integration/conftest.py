"""Fixtures for inventory's integration tests: a migrated database (SQLite and PostgreSQL), a
controllable clock, a room of its own per test (unique id, so events of other tests on the shared
broker never touch it).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import inventory_service
from common.db import Database
from common.testing.apps import migrated
from common.testing.tokens import service_headers
from inventory_service.domain.model import NightCounts
from inventory_service.service_layer.inventory import InventoryService
from inventory_service.settings import InventorySettings

MIGRATIONS = Path(inventory_service.__file__).parent / "migrations"
START = date(2030, 6, 1)  # far from "today": tests never depend on the calendar


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self._now = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> None:
        with self._lock:
            self._now += timedelta(**delta)


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_database: Callable[[str], str]
) -> InventorySettings:
    """Settings of a migrated database, a fresh one of each engine (the root ``new_database``).

    Kafka: the session broker, for tests that start the app (``app_settings``).
    """
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    return migrated(
        InventorySettings(
            env="test",
            database_url=new_database("inventory"),
            service_keys_dir=tmp_path / "keys",
            reaper_interval_s=0.05,
        ),
        MIGRATIONS,
    )


@pytest.fixture
def db(settings: InventorySettings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inventory(db: Database, clock: FakeClock) -> InventoryService:
    return InventoryService(db, hold_ttl=timedelta(minutes=5), clock=clock)


@pytest.fixture
def room_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def add_room(db: Database) -> Callable[..., None]:
    """Give a room ``days`` nights from ``START`` at ``capacity``."""

    def _add(room_id: str, capacity: int = 2, days: int = 10) -> None:
        InventoryService(db, hold_ttl=timedelta(minutes=5)).add_missing_nights(
            {room_id: capacity}, START, days
        )

    return _add


@pytest.fixture
def counts(inventory: InventoryService) -> Callable[..., list[tuple[int, int]]]:
    """``(held, booked)`` per night of ``room_id`` from ``START`` for ``days`` nights."""

    def _counts(room_id: str, days: int = 10) -> list[tuple[int, int]]:
        nights: list[NightCounts] = inventory.availability(room_id, START, START + timedelta(days=days))
        return [(n.held, n.booked) for n in nights]

    return _counts


@pytest.fixture
def room_headers(settings: InventorySettings) -> Callable[[], dict[str, str]]:
    """Fresh service-token headers of the room service (tokens are short-lived)."""
    return lambda: service_headers(settings.service_keys_dir, "room", "inventory")


def day(n: int) -> date:
    return START + timedelta(days=n)


async def eventually(
    condition: Callable[[], Awaitable[Any]], within: float = 20.0, what: str = "condition"
) -> Any:
    """``wait_for`` for async conditions (keeps the event loop, and so the app, running)."""
    deadline = time.monotonic() + within
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def app_settings(settings: InventorySettings, kafka_bootstrap: str) -> InventorySettings:
    """Settings for a running app: the session's real Kafka broker for its consumer."""
    return settings.model_copy(update={"kafka_bootstrap_servers": kafka_bootstrap})
