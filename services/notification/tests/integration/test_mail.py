"""One mail per event, exactly once: through real Kafka, a real database and a real SMTP sink."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from common.db import Database
from common.testing.events import EventPublisher, eventually
from common.testing.tokens import TestUsers
from notification_service.adapters.orm import NotificationRow, messaging
from notification_service.service_layer.notifications import Notifier
from notification_service.settings import NotificationSettings
from stack.smtp_sink import SmtpSink

from ..conftest import StartApp, consumer_metric, mails_to

NOW = datetime(2030, 1, 2, 10, 0, tzinfo=UTC)


def new_member() -> tuple[str, str]:
    member_id = str(uuid.uuid4())
    return member_id, f"m-{member_id[:8]}@example.com"


def registered(member_id: str, email: str, name: str | None = "Ann") -> dict[str, Any]:
    return {"user_id": member_id, "email": email, "display_name": name, "registered_at": NOW}


def reservation(member_id: str, reservation_id: str) -> dict[str, Any]:
    return {
        "reservation_id": reservation_id,
        "member_id": member_id,
        "room_id": "r101",
        "check_in": date(2030, 2, 1),
        "check_out": date(2030, 2, 4),
    }


def processed(db: Database, group: str, *event_ids: str) -> bool:
    pe = messaging.processed_events
    with db.read() as session:
        seen = set(session.scalars(select(pe.c.event_id).where(pe.c.consumer == group)))
    return set(event_ids) <= seen


def notification_rows(db: Database, member_id: str) -> list[NotificationRow]:
    with db.read() as session:
        return list(session.scalars(select(NotificationRow).where(NotificationRow.member_id == member_id)))


async def notifications(client: httpx.AsyncClient, users: TestUsers, member_id: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/notifications", headers=users.headers(member_id))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_welcome_mail_is_sent_once_even_when_the_event_is_delivered_twice(
    client: httpx.AsyncClient, sink: SmtpSink, users: TestUsers, events: EventPublisher
) -> None:
    member_id, email = new_member()
    duplicates_before = consumer_metric("messages_duplicate_total", "notification.users", "auth.users")
    sent = events.publish("UserRegistered", member_id, registered(member_id, email, "Ann Example"))
    events.redeliver(sent)

    mail = await eventually(lambda: mails_to(sink, email), "the welcome mail")
    await eventually(
        lambda: (
            consumer_metric("messages_duplicate_total", "notification.users", "auth.users")
            > duplicates_before
        ),
        "the redelivery to be skipped",
    )
    assert len(mails_to(sink, email)) == 1
    [welcome] = mail
    assert welcome["subject"] == "Welcome to Reservations"
    assert "Hello Ann Example" in welcome["body"]
    assert welcome["headers"]["X-Event-ID"] == sent.envelope.event_id

    async def sent_notifications() -> list[dict[str, Any]] | None:
        items = await notifications(client, users, member_id)
        return items if items and items[0]["status"] == "sent" else None

    [item] = await eventually(sent_notifications, "the notification marked sent")
    assert item["event_id"] == sent.envelope.event_id
    assert (item["event_type"], item["recipient"], item["subject"]) == (
        "UserRegistered",
        email,
        "Welcome to Reservations",
    )
    assert item["sent_at"] is not None
    assert item["created_at"] <= item["sent_at"]

    contact = await client.get("/api/v1/notifications/contact", headers=users.headers(member_id))
    assert contact.json() == {
        "member_id": member_id,
        "email": email,
        "display_name": "Ann Example",
        "version": 1,
    }


async def test_an_older_member_update_never_overwrites_a_newer_contact_copy(
    client: httpx.AsyncClient, sink: SmtpSink, users: TestUsers, events: EventPublisher, db: Database
) -> None:
    member_id, email = new_member()

    def updated(version: int, name: str) -> dict[str, Any]:
        return {
            "member_id": member_id,
            "version": version,
            "email": email,
            "display_name": name,
            "tier": "standard",
            "status": "active",
            "updated_at": NOW,
        }

    v3 = events.publish("MemberUpdated", member_id, updated(3, "Third"))
    v2 = events.publish("MemberUpdated", member_id, updated(2, "Second"))
    await eventually(
        lambda: processed(db, "notification.members", v3.envelope.event_id, v2.envelope.event_id),
        "both updates processed",
    )
    headers = users.headers(member_id)
    contact = (await client.get("/api/v1/notifications/contact", headers=headers)).json()
    assert (contact["version"], contact["display_name"]) == (3, "Third")

    # The sign-up (version 1) arrives last (another topic): the welcome mail goes out, the copy
    # stays at version 3.
    events.publish("UserRegistered", member_id, registered(member_id, email, "First"))
    [welcome] = await eventually(lambda: mails_to(sink, email), "the welcome mail")
    assert "Hello Third" in welcome["body"]
    contact = (await client.get("/api/v1/notifications/contact", headers=headers)).json()
    assert (contact["version"], contact["display_name"]) == (3, "Third")
    assert [n["event_type"] for n in await notifications(client, users, member_id)] == ["UserRegistered"]


async def test_reservation_and_license_events_mail_the_member_once_each(
    client: httpx.AsyncClient, sink: SmtpSink, users: TestUsers, events: EventPublisher
) -> None:
    member_id, email = new_member()
    events.publish("UserRegistered", member_id, registered(member_id, email))
    reservation_id, license_id, activation_id = (str(uuid.uuid4()) for _ in range(3))
    created = events.publish(
        "ReservationCreated",
        reservation_id,
        {**reservation(member_id, reservation_id), "nights": 3, "created_at": NOW},
    )
    events.publish(
        "ReservationCancelled",
        reservation_id,
        {**reservation(member_id, reservation_id), "cancelled_at": NOW},
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
            "activated_at": NOW,
        },
    )
    events.redeliver(created)

    mails = await eventually(lambda: (m := mails_to(sink, email)) and len(m) >= 4 and m, "four mails")
    subjects = sorted(mail["subject"] for mail in mails)
    assert subjects == [
        "License activated: studio on laptop-1",
        "Reservation cancelled: room r101, 2030-02-01 to 2030-02-04",
        "Reservation confirmed: room r101, 2030-02-01 to 2030-02-04",
        "Welcome to Reservations",
    ]
    confirmation = next(m for m in mails if m["subject"].startswith("Reservation confirmed"))
    assert reservation_id in confirmation["body"]
    assert "3 nights" in confirmation["body"]

    async def all_sent() -> list[dict[str, Any]] | None:
        items = await notifications(client, users, member_id)
        return items if len(items) == 4 and all(i["status"] == "sent" for i in items) else None

    items = await eventually(all_sent, "four notifications marked sent")
    assert {i["event_type"] for i in items} == {
        "UserRegistered",
        "ReservationCreated",
        "ReservationCancelled",
        "LicenseActivated",
    }
    assert len(mails_to(sink, email)) == 4  # the redelivered ReservationCreated mailed nothing

    # Nobody else sees them; nobody without a token sees anything.
    assert await notifications(client, users, str(uuid.uuid4())) == []
    assert (await client.get("/api/v1/notifications")).status_code == 401
    stranger = await client.get("/api/v1/notifications/contact", headers=users.headers(str(uuid.uuid4())))
    assert stranger.status_code == 404
    assert stranger.headers["content-type"].startswith("application/problem+json")


async def test_mail_is_retried_while_smtp_is_down_then_sent_exactly_once(
    client: httpx.AsyncClient,
    settings: NotificationSettings,
    users: TestUsers,
    events: EventPublisher,
    db: Database,
) -> None:
    member_id, email = new_member()
    events.publish("UserRegistered", member_id, registered(member_id, email))

    def retried() -> bool:
        rows = notification_rows(db, member_id)
        return bool(rows) and rows[0].attempts >= 2 and rows[0].status == "pending"

    await eventually(retried, "failed attempts while SMTP is down")
    [row] = notification_rows(db, member_id)
    assert row.last_error
    assert row.sent_at is None

    with SmtpSink(port=settings.smtp_port) as sink:
        await eventually(lambda: mails_to(sink, email), "the mail once SMTP is back")

        async def sent() -> bool:
            items = await notifications(client, users, member_id)
            return items[0]["status"] == "sent"

        await eventually(sent, "the notification marked sent")
        [row] = notification_rows(db, member_id)
        assert row.last_error is None
        assert len(mails_to(sink, email)) == 1


async def test_an_event_waits_for_the_contact_copy_then_mails_once(
    client: httpx.AsyncClient, sink: SmtpSink, events: EventPublisher
) -> None:
    member_id, email = new_member()
    reservation_id = str(uuid.uuid4())
    group, topic = "notification.reservations", "room.reservations"
    retries_before = consumer_metric("messages_retried_total", group, topic)
    dead_before = consumer_metric("messages_dead_lettered_total", group, topic)

    events.publish(
        "ReservationCreated",
        reservation_id,
        {**reservation(member_id, reservation_id), "nights": 3, "created_at": NOW},
    )
    await eventually(
        lambda: consumer_metric("messages_retried_total", group, topic) >= retries_before + 2,
        "the reservation event to be retried (no contact copy yet)",
    )
    events.publish("UserRegistered", member_id, registered(member_id, email))

    await eventually(lambda: len(mails_to(sink, email)) >= 2, "the welcome and confirmation mails")
    confirmation, welcome = sorted(m["subject"] for m in mails_to(sink, email))
    assert confirmation == "Reservation confirmed: room r101, 2030-02-01 to 2030-02-04"
    assert welcome == "Welcome to Reservations"
    assert consumer_metric("messages_dead_lettered_total", group, topic) == dead_before


async def test_refused_mail_fails_and_events_without_a_contact_are_dead_lettered(
    start: StartApp, settings: NotificationSettings, sink: SmtpSink, users: TestUsers, events: EventPublisher
) -> None:
    impatient = settings.model_copy(update={"mail_retry_horizon_s": 1.0, "consumer_max_attempts": 2})
    group, topic = "notification.licenses", "auth.licenses"
    dead_before = consumer_metric("messages_dead_lettered_total", group, topic)
    async with start(impatient) as client:
        refused_id, later_id = str(uuid.uuid4()), str(uuid.uuid4())
        # The sink refuses "+fail" recipients with 550 (permanent) and "+tempfail" with 451.
        events.publish(
            "UserRegistered", refused_id, registered(refused_id, f"{refused_id[:8]}+fail@example.com")
        )
        events.publish(
            "UserRegistered", later_id, registered(later_id, f"{later_id[:8]}+tempfail@example.com")
        )
        license_id = str(uuid.uuid4())
        events.publish(
            "LicenseActivated",
            license_id,
            {
                "activation_id": str(uuid.uuid4()),
                "license_id": license_id,
                "user_id": str(uuid.uuid4()),  # nobody we have a contact for
                "machine_id": "m",
                "product": "studio",
                "activated_at": NOW,
            },
        )

        async def failed(member_id: str) -> dict[str, Any] | None:
            items = await notifications(client, users, member_id)
            return items[0] if items and items[0]["status"] == "failed" else None

        await eventually(lambda: failed(refused_id), "the refused mail to fail")
        await eventually(lambda: failed(later_id), "the temporarily refused mail to run out of horizon")
        await eventually(
            lambda: consumer_metric("messages_dead_lettered_total", group, topic) > dead_before,
            "the license event without a contact to be dead-lettered",
        )
    assert sink.messages == []


async def test_a_send_cut_off_before_its_outcome_is_sent_again_once_with_the_same_message_id(
    client: httpx.AsyncClient, sink: SmtpSink, users: TestUsers, events: EventPublisher, db: Database
) -> None:
    member_id, email = new_member()
    events.publish("UserRegistered", member_id, registered(member_id, email))
    [first] = await eventually(lambda: mails_to(sink, email), "the welcome mail")
    await eventually(
        lambda: [r.status for r in notification_rows(db, member_id)] == ["sent"], "the mail marked sent"
    )
    # As if the sender had died after SMTP took the mail, before it recorded "sent": the row
    # is still "sending", and its lease has run out.
    [row] = notification_rows(db, member_id)
    with db.transaction() as session:
        session.execute(
            update(NotificationRow)
            .where(NotificationRow.notification_id == row.notification_id)
            .values(status="sending", sent_at=None, next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    mails = await eventually(lambda: (m := mails_to(sink, email)) and len(m) >= 2 and m, "the re-send")
    await eventually(
        lambda: [r.status for r in notification_rows(db, member_id)] == ["sent"], "the re-send marked sent"
    )
    assert len(mails_to(sink, email)) == 2  # once more, not again and again
    assert first["headers"]["Message-ID"] == mails[1]["headers"]["Message-ID"]
    assert first["headers"]["Message-ID"] == f"<{row.event_id}@notification.reservations>"
    [row] = notification_rows(db, member_id)
    assert row.attempts == 2


async def test_an_admin_resends_a_failed_mail_and_nobody_else_may(
    client: httpx.AsyncClient, sink: SmtpSink, users: TestUsers, events: EventPublisher, db: Database
) -> None:
    member_id, email = new_member()
    events.publish("UserRegistered", member_id, registered(member_id, email))
    await eventually(
        lambda: [r.status for r in notification_rows(db, member_id)] == ["sent"], "the mail marked sent"
    )
    [row] = notification_rows(db, member_id)
    path = f"/api/v1/notifications/{row.notification_id}/resend"

    assert (await client.post(path)).status_code == 401
    as_owner = await client.post(path, headers=users.headers(member_id))  # not an admin: 403
    assert as_owner.status_code == 403
    assert as_owner.headers["content-type"].startswith("application/problem+json")
    admin = users.headers(str(uuid.uuid4()), admin=True)
    missing = await client.post("/api/v1/notifications/nope/resend", headers=admin)
    assert missing.status_code == 404

    queued = await client.post(path, headers=admin)
    assert queued.status_code == 202, queued.text
    assert queued.json()["notification_id"] == row.notification_id
    mails = await eventually(lambda: (m := mails_to(sink, email)) and len(m) >= 2 and m, "the re-sent mail")
    assert mails[0]["headers"]["Message-ID"] == mails[1]["headers"]["Message-ID"]
    await eventually(lambda: notification_rows(db, member_id)[0].status == "sent", "the re-send marked sent")


async def test_a_mail_being_retried_cannot_be_resent_meanwhile(
    client: httpx.AsyncClient,
    settings: NotificationSettings,
    users: TestUsers,
    events: EventPublisher,
    db: Database,
) -> None:
    member_id, email = new_member()  # the fixture's SMTP port has no server: the mail waits
    events.publish("UserRegistered", member_id, registered(member_id, email))
    await eventually(lambda: notification_rows(db, member_id), "the queued mail")
    [row] = notification_rows(db, member_id)
    admin = users.headers(str(uuid.uuid4()), admin=True)
    busy = await client.post(f"/api/v1/notifications/{row.notification_id}/resend", headers=admin)
    assert busy.status_code == 409
    assert busy.headers["content-type"].startswith("application/problem+json")


async def test_notifications_are_paged_and_a_cursor_stays_with_its_owner(
    client: httpx.AsyncClient, users: TestUsers, db: Database
) -> None:
    member_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    t0 = datetime(2030, 1, 1, tzinfo=UTC)

    def queue(who: str, n: int) -> None:
        notifier = Notifier(clock=lambda: t0 + timedelta(seconds=n // 2))  # pairs share a timestamp
        with db.transaction() as session:
            notifier.user_registered(
                session,
                str(uuid.uuid4()),
                {"user_id": who, "email": f"{who[:8]}@example.com", "display_name": f"N{n}"},
            )

    # One welcome per event: five "events" for the member, each its own notification.
    for n in range(5):
        queue(member_id, n)
    queue(other, 0)

    async def page(who: str, **params: Any) -> httpx.Response:
        return await client.get("/api/v1/notifications", params=params, headers=users.headers(who))

    first = (await page(member_id, limit=2)).json()
    assert len(first["items"]) == 2
    queue(member_id, 99)  # a newer one meanwhile: it belongs before page one
    seen, cursor = [i["notification_id"] for i in first["items"]], first["next_cursor"]
    while cursor:
        body = (await page(member_id, limit=2, cursor=cursor)).json()
        seen += [i["notification_id"] for i in body["items"]]
        cursor = body["next_cursor"]
    everything = (await page(member_id, limit=100)).json()
    assert everything["next_cursor"] is None
    assert seen == [i["notification_id"] for i in everything["items"]][1:]  # all but the newest, once

    foreign = await page(other, cursor=first["next_cursor"])
    assert foreign.status_code == 422
    assert foreign.headers["content-type"].startswith("application/problem+json")
    assert (await page(member_id, limit=101)).status_code == 422
