"""The SMTP mailer against a real SMTP server (the stack's sink): one connection for many mails,
a refusal answered on it, and a server restart survived without failing a mail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notification_service.adapters.smtp import MailError, MailRejected, SmtpMailer
from notification_service.domain.notifications import Notification
from stack.ports import free_port_block
from stack.smtp_sink import SmtpSink


def mail(recipient: str = "ann@example.com") -> Notification:
    return Notification(
        notification_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="UserRegistered",
        member_id="m1",
        recipient=recipient,
        subject="Welcome",
        body="Hello",
        status="sending",
        attempts=1,
        created_at=datetime.now(UTC),
        sent_at=None,
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SmtpSink]:
    with SmtpSink(port=free_port_block(1), mailbox=tmp_path / "mailbox.jsonl") as smtp:
        yield smtp


@pytest.fixture
def mailer(sink: SmtpSink) -> Iterator[SmtpMailer]:
    smtp = SmtpMailer(sink.host, sink.port, "Reservations <no-reply@example.com>", timeout=30)
    yield smtp
    smtp.close()


def test_mails_share_one_connection_and_a_refusal_does_not_break_it(
    sink: SmtpSink, mailer: SmtpMailer
) -> None:
    sent = [mail(f"ann{n}@example.com") for n in range(5)]
    for notification in sent[:3]:
        mailer.send(notification)
    with pytest.raises(MailRejected):
        mailer.send(mail("bob+fail@example.com"))
    with pytest.raises(MailError) as temporary:
        mailer.send(mail("bob+tempfail@example.com"))
    assert not isinstance(temporary.value, MailRejected)
    for notification in sent[3:]:
        mailer.send(notification)

    received = [m["headers"]["Message-ID"] for m in sink.messages]
    assert received == [n.message_id for n in sent]
    assert mailer.connections_opened == 1


def test_a_connection_the_server_dropped_is_replaced_without_failing_the_mail(
    sink: SmtpSink, mailer: SmtpMailer
) -> None:
    mailer.send(mail())
    sink.stop()  # the server goes away (a restart, an idle timeout): our connection is dead
    sink.start()

    after = mail("cy@example.com")
    mailer.send(after)  # no MailError: the dead connection is found and replaced once

    assert sink.messages[-1]["headers"]["Message-ID"] == after.message_id
    assert mailer.connections_opened == 2


def test_with_the_server_down_a_mail_fails_as_temporary_and_the_next_one_reconnects(
    sink: SmtpSink, mailer: SmtpMailer
) -> None:
    mailer.send(mail())
    sink.stop()
    with pytest.raises(MailError) as down:
        mailer.send(mail())
    assert not isinstance(down.value, MailRejected)

    sink.start()
    mailer.send(mail("dee@example.com"))
    assert sink.messages[-1]["to"] == ["dee@example.com"]


def test_close_is_idempotent_and_the_mailer_reconnects_after_it(sink: SmtpSink, mailer: SmtpMailer) -> None:
    mailer.send(mail())
    mailer.close()
    mailer.close()
    mailer.send(mail())
    assert mailer.connections_opened == 2
    assert len(sink.messages) == 2
