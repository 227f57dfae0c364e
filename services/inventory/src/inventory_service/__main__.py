"""`python -m inventory_service migrate|seed|serve`."""

from pathlib import Path

from common.cli import run_service_cli
from inventory_service.app import create_app
from inventory_service.seed import seed
from inventory_service.settings import InventorySettings

raise SystemExit(
    run_service_cli(
        settings_factory=InventorySettings,
        create_app=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
        seed=seed,
    )
)
