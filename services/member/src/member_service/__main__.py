"""`python -m member_service migrate|serve`."""

from pathlib import Path

from common.cli import run_service_cli
from member_service.app import create_app
from member_service.settings import MemberSettings

raise SystemExit(
    run_service_cli(
        settings_factory=MemberSettings,
        create_app=create_app,
        migrations_dir=Path(__file__).parent / "migrations",
    )
)
