"""The auth service migrates its own database, starts, and reports ready."""

from pathlib import Path

import pytest

import auth_service
from auth_service.app import create_app
from auth_service.settings import AuthSettings
from common.testing.apps import check_service_boots


async def test_migrates_starts_and_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str
) -> None:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    settings = AuthSettings(env="test", kafka_bootstrap_servers=kafka_bootstrap)
    await check_service_boots(create_app, settings, Path(auth_service.__file__).parent / "migrations")
