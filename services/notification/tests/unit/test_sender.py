"""The mail sender on a real SQLite database with a fake mailer: claim, send, record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import notification_service
from common.db import Database
from common.migrations import upgrade_to_head
from common.pagination import PageRequest
from notification_service.adapters.orm import NotificationRow
from notification_service.adapters.repository import NotificationRepository
from notification_service.adapters.smtp import MailError, MailRejected, SmtpMailer
from notification_service.domain import notifications as rules
from notification_service.domain.notifications import Notification, RetryPolicy
from notification_service.service_layer.notifications import (
    ContactMissing,
    NotDoneYet,
    NotificationNotFound,
    Notifier,
    Resends,
)
from notification_service.service_layer.sender import MailSender
from notification_service.settings import NotificationSettings

MIGRATIONS = Path(notification_service.__file__).parent / "migrations"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class FakeMailer:
    """Records what it sends; fails with the queued errors first."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.sent: list[str] = []

    def send(self, notification: Notification) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(notification.event_id)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'notification.db'}"
    upgrade_to_head(MIGRATIONS, url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def queue_welcome(db: Database, clock: Clock, event_id: str = "e-1") -> list[int]:
    """Record a welcome notification as the consumer would; returns the wake-up calls made."""
    wakes: list[int] = []
    notifier = Notifier(clock, on_queued=lambda: wakes.append(1))
    event = {"user_id": "m1", "email": "ann@example.com", "display_name": "Ann"}
    with db.transaction() as session:
        notifier.user_registered(session, event_id, event)
        assert wakes == []  # not before the commit
    return wakes


def the_notification(db: Database) -> Notification:
    with db.read() as session:
        [notification] = NotificationRepository(session).for_member("m1", PageRequest()).items
    return notification


def status(db: Database) -> tuple[str, int]:
    notification = the_notification(db)
    return notification.status, notification.attempts


def next_attempt_at(db: Database) -> datetime:
    with db.read() as session:
        return session.scalars(select(NotificationRow.next_attempt_at)).one()


LEASE_S = 300.0


def sender(db: Database, mailer: FakeMailer, clock: Clock, horizon_s: float = 120) -> MailSender:
    return MailSender(db, mailer, RetryPolicy(horizon_s, base_s=10, cap_s=60), lease_s=LEASE_S, clock=clock)


def test_a_queued_mail_wakes_the_sender_after_commit_and_is_sent_once(db: Database, clock: Clock) -> None:
    assert queue_welcome(db, clock) == [1]
    mailer = FakeMailer()
    mail_sender = sender(db, mailer, clock)
    assert mail_sender.run_once() == 1
    assert mail_sender.run_once() == 0
    assert mailer.sent == ["e-1"]
    assert status(db) == ("sent", 1)
    assert mail_sender.counts == {"sent": 1}


def test_the_same_event_never_queues_a_second_mail(db: Database, clock: Clock) -> None:
    queue_welcome(db, clock)
    assert queue_welcome(db, clock) == []  # already recorded: nothing queued, nobody woken
    mailer = FakeMailer()
    sender(db, mailer, clock).run_once()
    assert mailer.sent == ["e-1"]


def test_a_transient_failure_is_retried_after_the_backoff(db: Database, clock: Clock) -> None:
    queue_welcome(db, clock)
    mailer = FakeMailer(MailError("connection refused"))
    mail_sender = sender(db, mailer, clock)
    assert mail_sender.run_once() == 1
    assert status(db) == ("pending", 1)
    assert mail_sender.run_once() == 0  # not due yet
    clock.now += timedelta(seconds=10)
    assert mail_sender.run_once() == 1
    assert (status(db), mailer.sent) == (("sent", 2), ["e-1"])


def test_retries_last_until_the_horizon_is_spent_then_the_mail_is_failed(db: Database, clock: Clock) -> None:
    queue_welcome(db, clock)
    queued_at = clock.now
    mail_sender = sender(
        db, FakeMailer(*(MailError("451 try later") for _ in range(100))), clock, horizon_s=120
    )
    while status(db)[0] == "pending":
        clock.now = max(clock.now, next_attempt_at(db))
        assert mail_sender.run_once() == 1
    # Backoff 10, 20, 40 s (jittered: up to half earlier), the last try on the horizon itself.
    state, attempts = status(db)
    assert state == "failed"
    assert 4 <= attempts <= 8
    assert clock.now == queued_at + timedelta(seconds=120)
    assert mail_sender.run_once() == 0


def test_an_smtp_outage_of_hours_still_ends_in_exactly_one_mail_with_the_default_settings(
    db: Database, clock: Clock
) -> None:
    # The old policy (8 attempts, backoff capped at 30 s) gave up after about a minute.
    defaults = NotificationSettings(env="test")
    outage_ends = clock.now + timedelta(hours=3)

    class DownForHours(FakeMailer):
        def send(self, notification: Notification) -> None:
            if clock.now < outage_ends:
                raise MailError("connection refused")
            super().send(notification)

    queue_welcome(db, clock)
    mailer = DownForHours()
    retry = RetryPolicy(
        defaults.mail_retry_horizon_s, defaults.mail_backoff_base_s, defaults.mail_backoff_cap_s
    )
    mail_sender = MailSender(db, mailer, retry, lease_s=defaults.mail_send_lease_s, clock=clock)
    while status(db)[0] == "pending":
        clock.now = max(clock.now, next_attempt_at(db))
        mail_sender.run_once()
    assert status(db)[0] == "sent"
    assert mailer.sent == ["e-1"]
    # Retried at most every 10 minutes (the cap), so it went out within 10 minutes of recovery.
    assert clock.now - outage_ends <= timedelta(seconds=defaults.mail_backoff_cap_s)
    assert defaults.mail_retry_horizon_s >= 4 * 3600


def test_the_backoff_never_overflows_however_many_attempts(clock: Clock) -> None:
    retry = RetryPolicy(horizon_s=10**9, base_s=1, cap_s=600)
    assert retry.next_attempt(5000, clock.now, clock.now) == clock.now + timedelta(seconds=600)


def test_a_permanent_refusal_is_not_retried(db: Database, clock: Clock) -> None:
    queue_welcome(db, clock)
    sender(db, FakeMailer(MailRejected("550 no such user")), clock).run_once()
    assert status(db) == ("failed", 1)


def claim_and_die(db: Database, clock: Clock) -> Notification:
    """A sender claims the mail (committed), then its process dies before recording anything."""
    notification = the_notification(db)
    with db.transaction() as session:
        claimed = NotificationRepository(session).claim(
            notification.notification_id, clock.now, clock.now + timedelta(seconds=LEASE_S)
        )
    assert claimed is not None
    return claimed


def test_a_send_interrupted_after_the_claim_is_sent_again_once_its_lease_expires(
    db: Database, clock: Clock
) -> None:
    queue_welcome(db, clock)
    claim_and_die(db, clock)
    mailer = FakeMailer()
    mail_sender = sender(db, mailer, clock)
    clock.now += timedelta(seconds=LEASE_S - 1)
    assert mail_sender.run_once() == 0  # the lease holds: it may still be on its way
    clock.now += timedelta(seconds=1)
    assert mail_sender.run_once() == 1
    assert mail_sender.run_once() == 0
    assert (status(db), mailer.sent) == (("sent", 2), ["e-1"])


def test_a_late_outcome_of_an_expired_claim_never_overwrites_the_newer_one(
    db: Database, clock: Clock
) -> None:
    queue_welcome(db, clock)
    stale = claim_and_die(db, clock)  # this sender is merely slow, not dead
    clock.now += timedelta(seconds=LEASE_S)
    mailer = FakeMailer()
    assert sender(db, mailer, clock).run_once() == 1
    with db.transaction() as session:
        recorded = NotificationRepository(session).finish(stale, "failed", error="timed out")
    assert recorded is False
    assert status(db) == ("sent", 2)


def test_the_message_id_is_the_same_on_every_attempt_and_unique_per_notification(
    db: Database, clock: Clock
) -> None:
    queue_welcome(db, clock, "e-1")
    queue_welcome(db, clock, "e-2")
    mailer = SmtpMailer("127.0.0.1", 1, "Reservations <no-reply@example.com>")
    with db.read() as session:
        first, second = NotificationRepository(session).for_member("m1", PageRequest()).items
    ids = {mailer.message(first)["Message-ID"], mailer.message(second)["Message-ID"]}
    assert len(ids) == 2
    assert mailer.message(first)["Message-ID"] == mailer.message(first)["Message-ID"] == first.message_id


def test_only_a_sent_or_failed_mail_can_be_resent_and_it_goes_out_again(db: Database, clock: Clock) -> None:
    queue_welcome(db, clock)
    notification_id = the_notification(db).notification_id
    wakes: list[int] = []
    resends = Resends(db, clock, on_queued=lambda: wakes.append(1))
    with pytest.raises(NotDoneYet):
        resends.resend(notification_id, by="admin")  # still pending
    with pytest.raises(NotificationNotFound):
        resends.resend("nope", by="admin")
    mailer = FakeMailer(MailRejected("550 mailbox full"))
    mail_sender = sender(db, mailer, clock)
    mail_sender.run_once()
    assert status(db) == ("failed", 1)
    clock.now += timedelta(days=1)  # long past the horizon: a re-send gets a new one
    assert resends.resend(notification_id, by="admin").status == "pending"
    assert wakes == [1]
    mail_sender.run_once()
    assert (status(db), mailer.sent) == (("sent", 2), ["e-1"])


def test_a_mail_for_a_member_without_contact_copy_waits(db: Database, clock: Clock) -> None:
    event = {"reservation_id": "res-1", "member_id": "nobody", "room_id": "r101", "nights": 1}
    with pytest.raises(ContactMissing), db.transaction() as session:
        Notifier(clock).mail_member(
            session, "e-9", "ReservationCreated", "nobody", event, rules.reservation_confirmed
        )
    with db.read() as session:
        assert NotificationRepository(session).for_member("nobody", PageRequest()).items == []
