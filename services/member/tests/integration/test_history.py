"""History from reservation and license events, including events that beat the profile."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from common.db import Database
from common.testing.events import EventPublisher, eventually
from common.testing.tokens import TestUsers
from member_service.adapters.orm import HistoryRow
from member_service.domain.history import HistoryEntry
from member_service.service_layer.members import record_history, register_member


def history_rows(db: Database, member_id: str) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).where(HistoryRow.member_id == member_id)) or 0)


async def test_history_is_kept_even_when_events_arrive_before_the_profile(
    client: httpx.AsyncClient, users: TestUsers, events: EventPublisher, db: Database
) -> None:
    member_id = str(uuid.uuid4())
    reservation_id, activation_id, license_id = (str(uuid.uuid4()) for _ in range(3))
    created_at = datetime(2030, 1, 2, 10, 0, tzinfo=UTC)
    stay: dict[str, Any] = {"room_id": "r101", "check_in": date(2030, 2, 1), "check_out": date(2030, 2, 4)}
    created = events.publish(
        "ReservationCreated",
        reservation_id,
        {
            "reservation_id": reservation_id,
            "member_id": member_id,
            **stay,
            "nights": 3,
            "created_at": created_at,
        },
    )
    events.publish(
        "ReservationCancelled",
        reservation_id,
        {
            "reservation_id": reservation_id,
            "member_id": member_id,
            **stay,
            "cancelled_at": datetime(2030, 1, 3, 9, 0, tzinfo=UTC),
        },
    )
    events.publish(
        "LicenseActivated",
        license_id,
        {
            "activation_id": activation_id,
            "license_id": license_id,
            "user_id": member_id,
            "machine_id": "laptop-1",
            "product": "studio",
            "activated_at": datetime(2030, 1, 4, 8, 0, tzinfo=UTC),
        },
    )
    events.redeliver(created)  # a redelivery adds nothing

    await eventually(lambda: history_rows(db, member_id) == 3, "three history entries")
    headers = users.headers(member_id)
    too_early = await client.get("/api/v1/members/me/history", headers=headers)
    assert too_early.status_code == 404  # the history is kept, but there is no profile yet

    events.publish(
        "UserRegistered",
        member_id,
        {"user_id": member_id, "email": "cy@example.com", "display_name": "Cy", "registered_at": created_at},
    )

    async def history() -> list[dict[str, Any]] | None:
        response = await client.get("/api/v1/members/me/history", headers=headers)
        return response.json()["items"] if response.status_code == 200 else None

    items = await eventually(history, "the history once the profile exists")
    assert [(i["kind"], i["ref_id"]) for i in items] == [
        ("license_activated", activation_id),
        ("reservation_cancelled", reservation_id),
        ("reservation_created", reservation_id),
    ]
    assert items[2]["details"] == {
        "room_id": "r101",
        "check_in": "2030-02-01",
        "check_out": "2030-02-04",
        "nights": 3,
    }
    assert items[2]["at"].startswith("2030-01-02T10:00:00")
    assert items[0]["details"] == {"license_id": license_id, "product": "studio", "machine_id": "laptop-1"}
    assert history_rows(db, member_id) == 3

    # Someone else sees only their own (empty) history.
    other = str(uuid.uuid4())
    events.publish(
        "UserRegistered",
        other,
        {"user_id": other, "email": "di@example.com", "display_name": "Di", "registered_at": created_at},
    )

    other_headers = users.headers(other)

    async def profile_exists() -> bool:
        return (await client.get("/api/v1/members/me", headers=other_headers)).status_code == 200

    await eventually(profile_exists, "the other member's profile")
    response = await client.get("/api/v1/members/me/history", headers=other_headers)
    assert (response.status_code, response.json()) == (200, {"items": [], "next_cursor": None})


async def test_history_is_paged_without_repeats_or_gaps_while_events_keep_coming(
    client: httpx.AsyncClient, users: TestUsers, db: Database
) -> None:
    member_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    t0 = datetime(2030, 1, 1, tzinfo=UTC)

    def record(who: str, n: int, at: datetime) -> None:
        entry = HistoryEntry(who, f"event-{who[:4]}-{n}", "license_activated", f"ref-{n}", at, {})
        with db.transaction() as session:
            record_history(session, entry)

    with db.transaction() as session:
        for who in (member_id, other):
            register_member(session, who, f"{who[:8]}@example.com", None, t0)
    for n in range(5):
        record(member_id, n, t0 + timedelta(hours=n // 2))  # two entries share each hour
    record(other, 99, t0)
    headers = users.headers(member_id)

    async def page(cursor: str | None, **extra: str) -> httpx.Response:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {}), **extra}
        return await client.get("/api/v1/members/me/history", params=params, headers=headers)

    first = (await page(None)).json()
    # Meanwhile: an event that happened long ago arrives late, and a new one.
    record(member_id, 5, t0 - timedelta(days=1))
    record(member_id, 6, t0 + timedelta(days=1))
    seen, cursor = [i["ref_id"] for i in first["items"]], first["next_cursor"]
    while cursor:
        body = (await page(cursor)).json()
        seen += [i["ref_id"] for i in body["items"]]
        cursor = body["next_cursor"]
    assert seen == ["ref-4", "ref-3", "ref-2", "ref-1", "ref-0", "ref-5"]  # the late one sorts last

    others = await client.get(
        "/api/v1/members/me/history", params={"cursor": first["next_cursor"]}, headers=users.headers(other)
    )
    assert others.status_code == 422
    assert others.headers["content-type"].startswith("application/problem+json")
    assert (await page(None, limit="101")).status_code == 422
