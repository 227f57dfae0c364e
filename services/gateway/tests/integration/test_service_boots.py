"""The gateway service migrates its own database (SQLite and PostgreSQL), starts, and reports ready."""

from collections.abc import Callable
from pathlib import Path

import pytest

import gateway_service
from common.testing.apps import check_service_boots
from gateway_service.app import create_app
from gateway_service.settings import GatewaySettings


async def test_migrates_starts_and_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_database: Callable[[str], str]
) -> None:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    settings = GatewaySettings(env="test", database_url=new_database("gateway"))
    await check_service_boots(
        create_app, settings, Path(gateway_service.__file__).parent / "migrations", uses_kafka=False
    )
