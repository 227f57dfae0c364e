"""Profiles: created from UserRegistered, changed by PATCH and suspend, each change an event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from sqlalchemy import func, select

from common.db import Database
from common.messaging import AvroCodec, Envelope, topic_for
from common.testing.events import EventPublisher, eventually
from common.testing.tokens import TestUsers
from member_service.adapters.orm import MemberRow, messaging
from member_service.service_layer.members import register_member


def registered(user_id: str, email: str, name: str | None = "Ann Example") -> dict[str, Any]:
    return {"user_id": user_id, "email": email, "display_name": name, "registered_at": datetime.now(UTC)}


def arrange_member(db: Database, member_id: str, email: str = "ann@example.com") -> None:
    with db.transaction() as session:
        register_member(session, member_id, email, "Ann", datetime.now(UTC))


def processed(db: Database, consumer: str, event_ids: set[str]) -> bool:
    pe = messaging.processed_events
    with db.read() as session:
        seen = set(session.scalars(select(pe.c.event_id).where(pe.c.consumer == consumer)))
    return event_ids <= seen


def member_updates(bootstrap: str, codec: AvroCodec, member_id: str, count: int) -> list[dict[str, Any]]:
    """The MemberUpdated payloads keyed ``member_id`` on member.members, in topic order."""
    topic = topic_for("MemberUpdated")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found: list[tuple[int, int, dict[str, Any]]] = []
        end = consumer.end_offsets(tps)
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.key == member_id.encode():
                        envelope = Envelope.from_headers(record.headers, record.key)
                        _, _, payload = codec.decode(record.value, envelope.schema_fingerprint)
                        found.append((record.partition, record.offset, payload))
        assert len({p for p, _, _ in found}) <= 1, "one member's events must share a partition"
        assert len(found) == count, found
        return [payload for _, _, payload in sorted(found, key=lambda f: f[:2])]
    finally:
        consumer.close(autocommit=False)


async def test_user_registered_creates_one_active_profile(
    client: httpx.AsyncClient, users: TestUsers, events: EventPublisher, db: Database
) -> None:
    user_id = str(uuid.uuid4())
    headers = users.headers(user_id)
    assert (await client.get("/api/v1/members/me", headers=headers)).status_code == 404

    first = events.publish("UserRegistered", user_id, registered(user_id, "ann@example.com"))
    events.redeliver(first)  # the same event again, byte for byte
    second = events.publish("UserRegistered", user_id, registered(user_id, "ann@example.com", "Other"))

    async def profile() -> httpx.Response | None:
        response = await client.get("/api/v1/members/me", headers=headers)
        return response if response.status_code == 200 else None

    body = (await eventually(profile, "the profile")).json()
    assert body["member_id"] == user_id
    assert body["email"] == "ann@example.com"
    assert body["display_name"] == "Ann Example"
    assert (body["status"], body["tier"], body["version"]) == ("active", "standard", 1)
    assert body["created_at"].endswith(("Z", "+00:00"))

    ids = {first.envelope.event_id, second.envelope.event_id}
    await eventually(lambda: processed(db, "member.profiles", ids), "both events processed")
    with db.read() as session:
        assert session.scalar(select(func.count()).where(MemberRow.member_id == user_id)) == 1
    again = (await client.get("/api/v1/members/me", headers=headers)).json()
    assert again == body  # the later event for the same user changed nothing


async def test_display_name_falls_back_to_the_address(
    client: httpx.AsyncClient, users: TestUsers, events: EventPublisher
) -> None:
    user_id = str(uuid.uuid4())
    events.publish("UserRegistered", user_id, registered(user_id, "bea@example.com", None))

    async def profile() -> dict[str, Any] | None:
        response = await client.get("/api/v1/members/me", headers=users.headers(user_id))
        return response.json() if response.status_code == 200 else None

    assert (await eventually(profile, "the profile"))["display_name"] == "bea"


async def test_patch_bumps_the_version_and_publishes_member_updated_in_order(
    client: httpx.AsyncClient, users: TestUsers, db: Database, kafka_bootstrap: str, codec: AvroCodec
) -> None:
    member_id = str(uuid.uuid4())
    arrange_member(db, member_id)
    headers = users.headers(member_id)

    first = await client.patch("/api/v1/members/me", json={"display_name": "Ann B"}, headers=headers)
    second = await client.patch("/api/v1/members/me", json={"display_name": " Ann C "}, headers=headers)
    assert (first.status_code, first.json()["version"]) == (200, 2)
    assert (second.status_code, second.json()["version"]) == (200, 3)
    assert second.json()["display_name"] == "Ann C"
    assert second.json()["updated_at"] >= first.json()["updated_at"]

    # No change, no new version: the same name again, or an empty body.
    same = await client.patch("/api/v1/members/me", json={"display_name": "Ann C"}, headers=headers)
    empty = await client.patch("/api/v1/members/me", json={}, headers=headers)
    assert same.json()["version"] == empty.json()["version"] == 3

    await eventually(lambda: outbox_drained(db), "the outbox to be relayed")
    updates = member_updates(kafka_bootstrap, codec, member_id, 2)
    assert [(u["version"], u["display_name"]) for u in updates] == [(2, "Ann B"), (3, "Ann C")]
    assert updates[1]["email"] == "ann@example.com"
    assert (updates[1]["status"], updates[1]["tier"]) == ("active", "standard")


def outbox_drained(db: Database) -> bool:
    """True once every outbox row has been published."""
    outbox = messaging.outbox
    with db.read() as session:
        waiting = session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    return waiting == 0


async def test_patch_refuses_bad_input(client: httpx.AsyncClient, users: TestUsers, db: Database) -> None:
    member_id = str(uuid.uuid4())
    arrange_member(db, member_id)
    headers = users.headers(member_id)
    for body in ({"display_name": ""}, {"display_name": "x" * 101}, {"display_name": 5}, {"email": "a@b.c"}):
        response = await client.patch("/api/v1/members/me", json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.headers["content-type"].startswith("application/problem+json")
    malformed = await client.patch(
        "/api/v1/members/me", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert (await client.get("/api/v1/members/me")).status_code == 401
    unknown = users.headers(str(uuid.uuid4()))
    no_profile = await client.patch("/api/v1/members/me", json={"display_name": "X"}, headers=unknown)
    assert no_profile.status_code == 404
    assert (await client.get("/api/v1/members/me", headers=headers)).json()["version"] == 1


async def test_suspend_is_for_admins_and_idempotent(
    client: httpx.AsyncClient, users: TestUsers, db: Database, kafka_bootstrap: str, codec: AvroCodec
) -> None:
    member_id = str(uuid.uuid4())
    arrange_member(db, member_id)
    url = f"/api/v1/admin/members/{member_id}/suspend"
    admin = users.headers(str(uuid.uuid4()), admin=True)

    assert (await client.post(url)).status_code == 401
    assert (await client.post(url, headers=users.headers(member_id))).status_code == 403
    profile = await client.get("/api/v1/members/me", headers=users.headers(member_id))
    assert profile.json()["status"] == "active"

    first = await client.post(url, headers=admin)
    assert first.status_code == 200
    assert (first.json()["status"], first.json()["version"]) == ("suspended", 2)
    again = await client.post(url, headers=admin)
    assert again.status_code == 200
    assert again.json() == first.json()  # already suspended: no new version, no event

    unknown = await client.post(f"/api/v1/admin/members/{uuid.uuid4()}/suspend", headers=admin)
    assert unknown.status_code == 404

    await eventually(lambda: outbox_drained(db), "the outbox to be relayed")
    [update] = member_updates(kafka_bootstrap, codec, member_id, 1)
    assert (update["status"], update["version"]) == ("suspended", 2)
