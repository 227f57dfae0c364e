"""`python -m notification_service migrate|serve`."""

from pathlib import Path

from common.cli import run_service_cli
from notification_service.app import create_app
from notification_service.settings import NotificationSettings

raise SystemExit(
    run_service_cli(
        settings_factory=NotificationSettings,
        create_app=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
    )
)
