"""Fixtures for the room integration tests: the room app in-process (a migrated database of each
engine, SQLite and PostgreSQL, from the root ``new_database``; relay to
the real Kafka broker, real user tokens) and small stand-ins for member and inventory served by
a real uvicorn on free ports, so room's ServiceClient makes real HTTP calls with service tokens.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from sqlalchemy import func, select

import room_service
from common.app_factory import create_service_app
from common.auth import build_service_auth, ensure_service_keypair, require_service
from common.db import Database
from common.testing.apps import migrated, running
from common.testing.tokens import TestUsers
from room_service.adapters.orm import ReservationRow, messaging
from room_service.app import create_app
from room_service.seed import seed
from room_service.settings import RoomSettings

MIGRATIONS = Path(room_service.__file__).parent / "migrations"


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return result


# -- stand-ins for the services room calls -----------------------------------------------------


class MemberStandIn:
    """member's ``GET /internal/members/{id}`` (caller: room only)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.members: dict[str, str] = {}  # member id -> status; "slow" answers after slow_s
        self.requests: list[dict[str, str]] = []
        self.slow_s = 5.0

    def add(self, member_id: str, status: str = "active") -> None:
        self.members[member_id] = status

    def app(self, keys_dir: Path) -> FastAPI:
        router = APIRouter(dependencies=[Depends(require_service("room"))])

        @router.get("/internal/members/{member_id}")
        async def get_member(member_id: str, request: Request) -> Response:
            self.requests.append(dict(request.headers))
            status = self.members.get(member_id)
            if status is None:
                return JSONResponse({"detail": "unknown member"}, status_code=404)
            if status == "slow":
                await asyncio.sleep(self.slow_s)
                status = "active"
            body = {
                "member_id": member_id,
                "status": status,
                "tier": "standard",
                "active": status == "active",
            }
            return JSONResponse(body)

        return _standin_app("member", keys_dir, router)


class InventoryStandIn:
    """inventory's holds (caller: room only): idempotent by reservation id, like the real one."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.holds: dict[str, dict[str, Any]] = {}
        self.hold_requests: list[dict[str, Any]] = []
        self.releases: list[str] = []
        self.sold_out: set[str] = set()  # room ids with no night free
        # Hold requests wait until this many arrived: makes twin requests race for real.
        self.gate_arrivals = 0
        self.gate_opened = False
        self._arrived = 0
        self._gate: asyncio.Event | None = None

    def app(self, keys_dir: Path) -> FastAPI:
        router = APIRouter(dependencies=[Depends(require_service("room"))])

        @router.post("/internal/holds")
        async def place_hold(body: dict[str, Any], request: Request) -> Response:
            self.hold_requests.append({**body, "idempotency_key": request.headers.get("Idempotency-Key")})
            await self._wait_at_gate()
            if body["room_id"] in self.sold_out:
                return JSONResponse({"detail": "no availability"}, status_code=409)
            existing = self.holds.get(body["reservation_id"])
            if existing is not None:
                same = all(existing[k] == body[k] for k in ("room_id", "check_in", "check_out"))
                return JSONResponse(existing, status_code=200 if same else 422)
            hold = {
                **body,
                "status": "held",
                "expires_at": (datetime.now(UTC) + timedelta(minutes=15)).isoformat(),
            }
            self.holds[body["reservation_id"]] = hold
            return JSONResponse(hold, status_code=201)

        @router.delete("/internal/holds/{reservation_id}")
        async def release_hold(reservation_id: str) -> Response:
            self.releases.append(reservation_id)
            self.holds.pop(reservation_id, None)
            return Response(status_code=204)

        return _standin_app("inventory", keys_dir, router)

    async def _wait_at_gate(self) -> None:
        if not self.gate_arrivals:
            return
        if self._gate is None:  # created on the server's own event loop
            self._gate = asyncio.Event()
        self._arrived += 1
        if self._arrived >= self.gate_arrivals:
            self.gate_opened = True
            self._gate.set()
        await asyncio.wait_for(self._gate.wait(), timeout=15)


def _standin_app(service: str, keys_dir: Path, router: APIRouter) -> FastAPI:
    # The platform's app factory, so the stand-in verifies room's service token like the real one.
    return create_service_app(
        service=f"{service}-standin",
        title=f"{service} stand-in",
        routers=[router],
        state={"service_auth": build_service_auth("jwt", service, keys_dir, None)},
    )


class ThreadedServer:
    """A real uvicorn serving ``app`` from a background thread, on a socket bound up front."""

    def __init__(self, app: FastAPI) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        wait_for(lambda: self._server.started, what="stand-in server to start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()


@dataclass
class StandIns:
    member: MemberStandIn
    inventory: InventoryStandIn
    member_url: str
    inventory_url: str


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One keys dir for every room app and stand-in of the session (room's key made up front)."""
    path = tmp_path_factory.mktemp("keys")
    ensure_service_keypair(path, "room")
    return path


@pytest.fixture(scope="session")
def standins(keys_dir: Path) -> Iterator[StandIns]:
    member, inventory = MemberStandIn(), InventoryStandIn()
    with ThreadedServer(member.app(keys_dir)) as m, ThreadedServer(inventory.app(keys_dir)) as i:
        yield StandIns(member, inventory, m.url, i.url)


@pytest.fixture
def member(standins: StandIns) -> MemberStandIn:
    standins.member.reset()
    return standins.member


@pytest.fixture
def inventory(standins: StandIns) -> InventoryStandIn:
    standins.inventory.reset()
    return standins.inventory


# -- the room app ------------------------------------------------------------------------------


def today() -> date:
    return datetime.now(UTC).date()


def stay(room_id: str = "r101", start_in_days: int = 3, nights: int = 2) -> dict[str, str]:
    check_in = today() + timedelta(days=start_in_days)
    return {
        "room_id": room_id,
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=nights)).isoformat(),
    }


@dataclass
class Room:
    """The running room app, a client to it, and a look into its database."""

    client: httpx.AsyncClient
    settings: RoomSettings
    users: TestUsers
    db: Database
    member: MemberStandIn

    def new_member(self, status: str = "active") -> str:
        member_id = str(uuid.uuid4())
        self.member.add(member_id, status)
        return member_id

    async def reserve(
        self,
        member_id: str,
        body: Any = None,
        *,
        key: str | None = "key-1",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {**self.users.headers(member_id), **(headers or {})}
        if key is not None:
            all_headers["Idempotency-Key"] = key
        return await self.client.post(
            "/api/v1/reservations", json=stay() if body is None else body, headers=all_headers
        )

    def outbox(self) -> list[Any]:
        table = messaging.outbox
        with self.db.read() as session:
            return list(session.execute(select(table).order_by(table.c.id)).all())

    def events(self, event_type: str, key: str) -> list[Any]:
        return [row for row in self.outbox() if row.event_type == event_type and row.key == key]

    def reservation_count(self) -> int:
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(ReservationRow)) or 0)


RoomFactory = Callable[..., AbstractAsyncContextManager[Room]]


@pytest.fixture
def start_room(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kafka_bootstrap: str,
    keys_dir: Path,
    standins: StandIns,
    member: MemberStandIn,
    inventory: InventoryStandIn,
    new_database: Callable[[str], str],
) -> RoomFactory:
    """``async with start_room(member_timeout_s=0.3) as room:`` — the app with setting overrides."""
    monkeypatch.setenv("RUN_DIR", str(tmp_path))

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Room]:
        options: dict[str, Any] = {
            "env": "test",
            "kafka_bootstrap_servers": kafka_bootstrap,
            "service_keys_dir": keys_dir,
            "database_url": new_database("room"),
            "member_url": standins.member_url,
            "inventory_url": standins.inventory_url,
            "outbox_poll_interval_s": 0.2,
            **overrides,
        }
        settings = migrated(RoomSettings(**options), MIGRATIONS)
        seed(settings)
        users = TestUsers()
        db = Database(settings.database_url)
        try:
            async with running(create_app, settings, prepare=users.trust) as client:
                yield Room(client, settings, users, db, member)
        finally:
            db.dispose()

    return start


@pytest.fixture
async def room(start_room: RoomFactory) -> AsyncIterator[Room]:
    async with start_room() as started:
        yield started


# -- Kafka -------------------------------------------------------------------------------------


def kafka_record(bootstrap: str, topic: str, key: str, timeout: float = 30.0) -> Any:
    """The first record with ``key`` in ``topic`` (read from the beginning, no consumer group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = wait_for(lambda: consumer.partitions_for_topic(topic), timeout, f"topic {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                for record in batch:
                    if record.key == key.encode():
                        return record
        raise AssertionError(f"no record with key {key} in {topic} after {timeout}s")
    finally:
        consumer.close(autocommit=False)
