"""The gateway service migrates its own database, starts, and reports ready."""

from pathlib import Path

import pytest

import gateway_service
from common.testing.apps import check_service_boots
from gateway_service.app import create_app
from gateway_service.settings import GatewaySettings


async def test_migrates_starts_and_is_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    settings = GatewaySettings(env="test")
    await check_service_boots(
        create_app, settings, Path(gateway_service.__file__).parent / "migrations", uses_kafka=False
    )
