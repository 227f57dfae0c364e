"""The command line every service shares: ``python -m <service> migrate|seed|serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from common.logging import configure_logging
from common.migrations import upgrade_to_head
from common.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def run_service_cli(
    *,
    settings_factory: Callable[[], S],
    create_app: Callable[[S], FastAPI],
    migrations_dir: Path | None,
    seed: Callable[[S], None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``migrate`` / ``seed`` / ``serve`` and run it; returns the process exit code."""
    parser = argparse.ArgumentParser(prog=f"python -m {settings_factory.__module__.split('.')[0]}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending database migrations, then exit")
    if seed is not None:
        sub.add_parser("seed", help="migrate, then insert the demo data (idempotent), then exit")
    serve = sub.add_parser("serve", help="run the HTTP service (migrating first with --migrate)")
    serve.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    args = parser.parse_args(argv)

    settings = settings_factory()
    configure_logging(settings.service_name, settings.log_level, json_output=settings.log_json)
    if (args.command in ("migrate", "seed") or args.migrate) and migrations_dir is not None:
        upgrade_to_head(migrations_dir, settings.database_url)
        if args.command == "migrate":
            print(f"{settings.service_name}: database at head", file=sys.stderr)
            return 0
    if args.command == "seed" and seed is not None:
        seed(settings)
        print(f"{settings.service_name}: demo data in place", file=sys.stderr)
        return 0
    if args.command == "serve":
        app = create_app(settings)
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    return 0
