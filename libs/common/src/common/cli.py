"""The command line every service shares: ``python -m <service> migrate|seed|serve``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from common.logging import configure_logging
from common.migrations import upgrade_to_head
from common.settings import ServiceSettings
from common.tracing import configure_tracing

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
    tracing = configure_tracing(settings.service_name, settings.zipkin_endpoint)
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
        try:
            serve_app(create_app(settings), settings)
        finally:
            tracing.shutdown()  # the last batch of spans goes out before the process ends
    return 0


def server_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config:
    """How uvicorn serves the app on the main port.

    Proxy headers are believed only from ``settings.forwarded_allow_ips`` (uvicorn's default
    trusts 127.0.0.1, which on one host is every client: any of them could claim another
    address in ``X-Forwarded-For`` and get a fresh rate limit). No ``server`` banner.
    """
    trusted = settings.forwarded_allow_ips
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=",".join(trusted) if trusted else "",
    )


def management_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config:
    """How uvicorn serves the app's management app (``/metrics``, docs) on the management port."""
    return uvicorn.Config(
        app.state.management,
        host=settings.management_host,
        port=settings.management_port,
        lifespan="off",  # the service's lifespan runs once, with the main app
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


class ManagementServer(uvicorn.Server):
    """The management listener: it leaves the process's signals to the main server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_app(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve the main port and the management port from this process until a signal stops it.

    Both ports are bound before anything starts, so a taken port fails the start at once.
    """
    main_config, management = server_config(app, settings), management_config(app, settings)
    main_socket, management_socket = main_config.bind_socket(), management.bind_socket()
    asyncio.run(
        serve_both(
            uvicorn.Server(main_config), [main_socket], ManagementServer(management), [management_socket]
        )
    )


async def serve_both(
    main: uvicorn.Server,
    main_sockets: list[socket.socket],
    management: uvicorn.Server,
    management_sockets: list[socket.socket],
) -> None:
    """Run ``main`` until it exits (SIGTERM, SIGINT), with ``management`` beside it; stop both."""
    beside = asyncio.create_task(management.serve(sockets=management_sockets))
    try:
        await main.serve(sockets=main_sockets)
    finally:
        management.should_exit = True
        await beside
