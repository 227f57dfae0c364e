"""Fixtures for the use-case tests: a real SQLite database, the real outbox, and member and
inventory faked behind httpx.MockTransport (so the real ServiceClient and adapters run)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from common.db import Database
from common.http import RetryPolicy, ServiceClient
from common.idempotency import IdempotencyStore
from common.messaging import AvroCodec, Outbox
from room_service.adapters.clients import InventoryHolds, MemberDirectory
from room_service.adapters.orm import ReservationRow, idempotency_keys, messaging, metadata
from room_service.adapters.repositories import RoomRepository
from room_service.api.schemas import present_reservation
from room_service.seed import DEMO_ROOMS
from room_service.service_layer.reservations import Reservations

NOW = datetime(2030, 5, 10, 9, 30, tzinfo=UTC)


class FakeMember:
    """member's ``GET /internal/members/{id}``: known members answer 200, others 404."""

    def __init__(self) -> None:
        self.members: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.answer: httpx.Response | None = None  # when set: answer this instead

    def add(self, member_id: str, status: str = "active") -> None:
        self.members[member_id] = {
            "member_id": member_id,
            "status": status,
            "tier": "standard",
            "active": status == "active",
        }

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answer is not None:
            return self.answer
        member = self.members.get(request.url.path.rsplit("/", 1)[-1])
        return httpx.Response(200, json=member) if member else httpx.Response(404, json={"status": 404})


class FakeInventory:
    """inventory's holds: idempotent by reservation id, 422 for one id with another stay."""

    def __init__(self) -> None:
        self.holds: dict[str, dict[str, Any]] = {}
        self.sold_out: set[str] = set()
        self.hold_requests: list[httpx.Request] = []
        self.releases: list[str] = []
        self.release_status = 204
        self.release_statuses: list[int] = []  # answered first, one per release, then release_status
        self.answer: httpx.Response | None = None
        self.answer_with: Callable[[httpx.Request], Awaitable[httpx.Response]] | None = None  # hold requests
        # Hold requests wait until this many have arrived (to make twin requests race).
        self.gate_arrivals = 0
        self._arrived = 0
        self._gate = asyncio.Event()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            self.releases.append(request.url.path.rsplit("/", 1)[-1])
            status = self.release_statuses.pop(0) if self.release_statuses else self.release_status
            return httpx.Response(status)
        self.hold_requests.append(request)
        await self._wait_at_gate()
        if self.answer_with is not None:
            return await self.answer_with(request)
        if self.answer is not None:
            return self.answer
        body = json.loads(request.content)
        if body["room_id"] in self.sold_out:
            return httpx.Response(409, json={"detail": "no availability"})
        existing = self.holds.get(body["reservation_id"])
        if existing is not None:
            same = all(existing[k] == body[k] for k in ("room_id", "check_in", "check_out"))
            return httpx.Response(200, json=existing) if same else httpx.Response(422, json={})
        hold = {**body, "status": "held", "expires_at": "2030-05-10T09:45:00Z"}
        self.holds[body["reservation_id"]] = hold
        return httpx.Response(201, json=hold)

    async def _wait_at_gate(self) -> None:
        if not self.gate_arrivals:
            return
        self._arrived += 1
        if self._arrived >= self.gate_arrivals:
            self._gate.set()
        await asyncio.wait_for(self._gate.wait(), timeout=10)


class FakeSleep:
    """Records the backoff of background compensations instead of waiting it out."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """The use case under test and everything around it."""

    reservations: Reservations
    db: Database
    member: FakeMember
    inventory: FakeInventory
    clock: Clock
    codec: AvroCodec
    sleep: FakeSleep
    clients: list[ServiceClient] = field(default_factory=list)

    def count(self, table: Any) -> int:
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(table)) or 0)

    def reservation_count(self) -> int:
        return self.count(ReservationRow.__table__)

    def outbox_events(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(event type, key, decoded payload) of every outbox row, in order."""
        outbox = messaging.outbox
        with self.db.read() as session:
            rows = session.execute(select(outbox).order_by(outbox.c.id)).all()
        return [
            (row.event_type, row.key, self.codec.decode(row.payload, row.headers["schema_fingerprint"])[2])
            for row in rows
        ]

    def new_member(self, status: str = "active") -> str:
        member_id = str(uuid.uuid4())
        self.member.add(member_id, status)
        return member_id


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'room.db'}")
    metadata.create_all(database.engine)
    with database.transaction() as session:
        RoomRepository(session).add_missing(DEMO_ROOMS)
    yield database
    database.dispose()


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    member, inventory, clock, sleep = FakeMember(), FakeInventory(), Clock(), FakeSleep()
    codec = AvroCodec.from_contracts()

    def client(name: str, fake: FakeMember | FakeInventory) -> ServiceClient:
        return ServiceClient(
            name,
            f"http://{name}.test",
            caller=f"room-test-{uuid.uuid4().hex[:8]}",
            retry=RetryPolicy(max_attempts=1),
            transport=httpx.MockTransport(fake.handle),
        )

    member_client, inventory_client = client("member", member), client("inventory", inventory)
    reservations = Reservations(
        db,
        Outbox(messaging, codec, producer_name="room"),
        IdempotencyStore(idempotency_keys),
        MemberDirectory(member_client),
        InventoryHolds(inventory_client, release_timeout_s=2.0),
        present_reservation,
        member_retry_after_s=2,
        clock=clock,
        release_attempts=3,
        release_backoff_s=1.0,
        sleep=sleep,
    )
    yield World(reservations, db, member, inventory, clock, codec, sleep, [member_client, inventory_client])
    await reservations.compensations_settled()
    for c in (member_client, inventory_client):
        await c.aclose()
