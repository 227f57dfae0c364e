"""The room service migrates its own database (SQLite and PostgreSQL), starts, and reports ready."""

from collections.abc import Callable
from pathlib import Path

import pytest

import room_service
from common.testing.apps import check_service_boots
from room_service.app import create_app
from room_service.settings import RoomSettings


async def test_migrates_starts_and_is_ready(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
    new_database: Callable[[str], str],
) -> None:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    settings = RoomSettings(
        env="test", database_url=new_database("room"), kafka_bootstrap_servers=kafka_bootstrap
    )
    await check_service_boots(create_app, settings, Path(room_service.__file__).parent / "migrations")
