"""Room's reservation events, through the real broker, confirm and release holds."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from common.db import Database
from common.messaging import AvroCodec, Envelope, create_producer, topic_for
from common.messaging.envelope import utc_now_iso
from common.testing.apps import running
from inventory_service.adapters.orm import Hold, messaging
from inventory_service.app import create_app
from inventory_service.settings import InventorySettings

from .conftest import day, eventually

Publish = Callable[..., str]


@pytest.fixture
def publish(kafka_bootstrap: str) -> Iterator[Publish]:
    """Publish an event as room's relay would (Avro value, envelope headers, keyed by reservation)."""
    codec = AvroCodec.from_contracts()
    producer = create_producer(kafka_bootstrap, "inventory-test-room")

    def _publish(event_type: str, payload: dict[str, Any], event_id: str | None = None) -> str:
        value, fingerprint, version = codec.encode(event_type, payload)
        envelope = Envelope(
            event_id=event_id or str(uuid.uuid4()),
            event_type=event_type,
            schema_version=version,
            schema_fingerprint=fingerprint,
            occurred_at=utc_now_iso(),
            producer="room",
            key=payload["reservation_id"],
        )
        key = payload["reservation_id"].encode()
        producer.send(topic_for(event_type), key=key, value=value, headers=envelope.to_headers()).get(
            timeout=20
        )
        return envelope.event_id

    yield _publish
    producer.close(timeout=5)


def created(reservation_id: str, room_id: str, start: int, end: int) -> dict[str, Any]:
    return {
        "reservation_id": reservation_id,
        "member_id": "m-1",
        "room_id": room_id,
        "check_in": day(start),
        "check_out": day(end),
        "nights": end - start,
        "created_at": datetime.now(UTC),
    }


def cancelled(reservation_id: str, room_id: str, start: int, end: int) -> dict[str, Any]:
    return {
        "reservation_id": reservation_id,
        "member_id": "m-1",
        "room_id": room_id,
        "check_in": day(start),
        "check_out": day(end),
        "cancelled_at": datetime.now(UTC),
    }


def processed(db: Database, event_id: str) -> bool:
    """The consumer committed its effect of ``event_id`` (the dedup row commits with it)."""
    pe = messaging.processed_events
    with db.read() as session:
        return session.scalar(select(pe.c.event_id).where(pe.c.event_id == event_id)) is not None


def status_of(db: Database, reservation_id: str) -> str | None:
    with db.read() as session:
        return session.scalar(select(Hold.status).where(Hold.reservation_id == reservation_id))


async def test_reservation_created_confirms_and_cancelled_releases(
    app_settings: InventorySettings,
    db: Database,
    add_room,
    room_id: str,
    room_headers: Callable[[], dict[str, str]],
    publish: Publish,
) -> None:
    add_room(room_id, capacity=2, days=3)
    booked_id, held_id = f"res-{uuid.uuid4()}", f"res-{uuid.uuid4()}"

    async with running(create_app, app_settings) as client:

        async def counts() -> list[tuple[int, int]]:
            response = await client.get(
                "/api/v1/availability", params={"room_id": room_id, "from": day(0), "to": day(3)}
            )
            return [(n["held"], n["booked"]) for n in response.json()["nights"]]

        async def hold(reservation_id: str, start: int, end: int) -> httpx.Response:
            body = {
                "reservation_id": reservation_id,
                "room_id": room_id,
                "check_in": str(day(start)),
                "check_out": str(day(end)),
            }
            return await client.post("/internal/holds", json=body, headers=room_headers())

        assert (await hold(booked_id, 0, 2)).status_code == 201
        assert (await hold(held_id, 1, 3)).status_code == 201
        assert await counts() == [(1, 0), (2, 0), (1, 0)]

        # ReservationCreated, the same message again (platform dedup), then a re-publication
        # under a new event id (state check): booked once.
        first = publish("ReservationCreated", created(booked_id, room_id, 0, 2))
        publish("ReservationCreated", created(booked_id, room_id, 0, 2), event_id=first)
        last = publish("ReservationCreated", created(booked_id, room_id, 0, 2))

        async def consumed() -> bool:  # the partition is ordered: the last one done means all done
            return processed(db, last)

        await eventually(consumed, what="the events to be consumed")
        assert await counts() == [(0, 1), (1, 1), (1, 0)]
        assert status_of(db, booked_id) == "confirmed"
        assert (await hold(booked_id, 0, 2)).json()["status"] == "confirmed"  # room's retry: same hold

        # Cancelling a confirmed reservation frees its booked nights; a held one, its held nights.
        publish("ReservationCancelled", cancelled(booked_id, room_id, 0, 2))
        publish("ReservationCancelled", cancelled(held_id, room_id, 1, 3))

        async def all_free() -> bool:
            return await counts() == [(0, 0), (0, 0), (0, 0)]

        await eventually(all_free, what="both reservations to be released")
        assert (status_of(db, booked_id), status_of(db, held_id)) == ("released", "released")
