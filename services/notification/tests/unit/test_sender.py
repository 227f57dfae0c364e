"""The mail sender on a real SQLite database with a fake mailer: claim, send, record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import notification_service
from common.db import Database
from common.migrations import upgrade_to_head
from notification_service.adapters.repository import NotificationRepository
from notification_service.adapters.smtp import MailError, MailRejected
from notification_service.domain import notifications as rules
from notification_service.domain.notifications import Notification, RetryPolicy
from notification_service.service_layer.notifications import ContactMissing, Notifier
from notification_service.service_layer.sender import MailSender

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


def status(db: Database) -> tuple[str, int]:
    with db.read() as session:
        [notification] = NotificationRepository(session).for_member("m1")
    return notification.status, notification.attempts


def sender(db: Database, mailer: FakeMailer, clock: Clock, max_attempts: int = 3) -> MailSender:
    return MailSender(db, mailer, RetryPolicy(max_attempts, base_s=10, cap_s=60), clock=clock)


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


def test_retries_run_out_then_the_mail_is_failed(db: Database, clock: Clock) -> None:
    queue_welcome(db, clock)
    mail_sender = sender(db, FakeMailer(*(MailError("451 try later") for _ in range(3))), clock)
    for _ in range(3):
        mail_sender.run_once()
        clock.now += timedelta(minutes=1)
    assert status(db) == ("failed", 3)
    assert mail_sender.run_once() == 0


def test_a_permanent_refusal_is_not_retried(db: Database, clock: Clock) -> None:
    queue_welcome(db, clock)
    sender(db, FakeMailer(MailRejected("550 no such user")), clock).run_once()
    assert status(db) == ("failed", 1)


def test_a_send_interrupted_after_the_claim_is_never_repeated(db: Database, clock: Clock) -> None:
    queue_welcome(db, clock)
    with db.transaction() as session:  # the claim committed, then the process died mid-send
        [notification] = NotificationRepository(session).for_member("m1")
        assert NotificationRepository(session).claim(notification.notification_id) is not None
    mailer = FakeMailer()
    clock.now += timedelta(days=1)
    assert sender(db, mailer, clock).run_once() == 0
    assert (status(db), mailer.sent) == (("sending", 1), [])


def test_a_mail_for_a_member_without_contact_copy_waits(db: Database, clock: Clock) -> None:
    event = {"reservation_id": "res-1", "member_id": "nobody", "room_id": "r101", "nights": 1}
    with pytest.raises(ContactMissing), db.transaction() as session:
        Notifier(clock).mail_member(
            session, "e-9", "ReservationCreated", "nobody", event, rules.reservation_confirmed
        )
    with db.read() as session:
        assert NotificationRepository(session).for_member("nobody") == []
