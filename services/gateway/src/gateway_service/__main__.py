"""`python -m gateway_service migrate|serve`."""

from pathlib import Path

from common.cli import run_service_cli
from gateway_service.app import create_app
from gateway_service.settings import GatewaySettings

raise SystemExit(
    run_service_cli(
        settings_factory=GatewaySettings,
        create_app=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
    )
)
