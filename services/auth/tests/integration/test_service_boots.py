"""The auth service migrates its own database (SQLite and PostgreSQL), starts, and reports ready."""

from collections.abc import Callable
from pathlib import Path

import pytest

import auth_service
from auth_service.app import create_app
from auth_service.settings import AuthSettings
from common.testing.apps import check_service_boots


async def test_migrates_starts_and_is_ready(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
    new_database: Callable[[str], str],
) -> None:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    settings = AuthSettings(
        env="test", database_url=new_database("auth"), kafka_bootstrap_servers=kafka_bootstrap
    )
    await check_service_boots(create_app, settings, Path(auth_service.__file__).parent / "migrations")
