"""`python -m auth_service migrate|seed|serve`."""

from pathlib import Path

from auth_service.app import create_app
from auth_service.seed import seed
from auth_service.settings import AuthSettings
from common.cli import run_service_cli

raise SystemExit(
    run_service_cli(
        settings_factory=AuthSettings,
        create_app=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
        seed=seed,
    )
)
