"""`python -m room_service migrate|seed|serve`."""

from pathlib import Path

from common.cli import run_service_cli
from room_service.app import create_app
from room_service.seed import seed
from room_service.settings import RoomSettings

raise SystemExit(
    run_service_cli(
        settings_factory=RoomSettings,
        create_app=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
        seed=seed,
    )
)
