"""Readiness follows what a service can serve: Kafka down is information, the database is not.

The app is built by ``ServiceRuntime`` exactly as a service builds it, with Kafka's address a
closed port; the lifespan is not started (no relay drains the outbox, so the row stays there).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import MetaData

from common.messaging import messaging_tables
from common.runtime import ServiceRuntime
from common.settings import ServiceSettings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens once the socket is closed


@pytest.fixture
def runtime(tmp_path: Path, payloads) -> Iterator[ServiceRuntime]:
    metadata = MetaData()
    tables = messaging_tables(metadata)
    settings = ServiceSettings(
        env="test",
        database_url=f"sqlite:///{tmp_path / 'svc.db'}",
        kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}",
        service_keys_dir=tmp_path / "keys",
    )
    runtime = ServiceRuntime(settings, tables=tables)
    metadata.create_all(runtime.db.engine)
    outbox = runtime.outbox()  # a publishing service: it has a relay
    with runtime.db.transaction() as session:  # a request that succeeded while Kafka is down
        outbox.add(session, "ReservationCreated", key="r-1", payload=payloads["ReservationCreated"])
    runtime.add_consumer("reservations", ["room.reservations"], {"ReservationCreated": lambda *_: None})
    yield runtime
    runtime.db.dispose()


def client(runtime: ServiceRuntime) -> httpx.AsyncClient:
    app = runtime.create_app(title="t", routers=[])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_kafka_down_keeps_the_service_ready_and_reports_the_outbox(runtime: ServiceRuntime) -> None:
    async with client(runtime) as c:
        ready = await c.get("/health/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert (checks["database"]["ok"], checks["database"]["critical"]) == (True, True)
    assert (checks["kafka"]["ok"], checks["kafka"]["critical"]) == (False, False)
    outbox = checks["outbox"]
    assert outbox["critical"] is False
    assert outbox["detail"]["backlog"] == 1
    assert outbox["detail"]["oldest_unsent_age_s"] >= 0
    assert checks["consumers"]["detail"]["service.reservations"]["healthy"] is False


async def test_the_database_down_makes_it_unready(runtime: ServiceRuntime, tmp_path: Path) -> None:
    runtime.db.dispose()
    (tmp_path / "svc.db").unlink()
    (tmp_path / "svc.db").mkdir()  # SQLite can't open a directory: the database is unreachable
    async with client(runtime) as c:
        ready = await c.get("/health/ready")
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["database"]["ok"] is False
