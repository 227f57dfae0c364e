"""The local SMTP sink: in-memory and JSON-lines mailbox, failure recipients, CLI."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from stack.ports import free_port_block
from stack.smtp_sink import SmtpSink, read_mailbox, wait_for_mailbox


@pytest.fixture
def mailbox(tmp_path: Path) -> Path:
    return tmp_path / "mail" / "mailbox.jsonl"


@pytest.fixture
def sink(mailbox: Path) -> Iterator[SmtpSink]:
    with SmtpSink(port=free_port_block(1), mailbox=mailbox) as running:
        yield running


def _send(port: int, message: EmailMessage, login: bool = False) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        if login:
            smtp.login("notification", "any-password")
        smtp.send_message(message)


def _mail(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Reservations <noreply@reservations.test>"
    message["To"] = to
    message["Subject"] = subject
    message["X-Event-Id"] = "evt-123"
    message.set_content(body)
    return message


def test_received_mail_is_kept_in_memory_and_in_the_mailbox_file(sink: SmtpSink, mailbox: Path) -> None:
    _send(sink.port, _mail("ann@example.com", "Welcome, Ann", "Your account is ready.\n"))

    mail = sink.wait_for(lambda m: m["subject"] == "Welcome, Ann", timeout=5)
    assert mail["to"] == ["ann@example.com"]
    assert mail["from"] == "noreply@reservations.test"
    assert mail["body"] == "Your account is ready.\n"
    assert mail["headers"]["X-Event-Id"] == "evt-123"
    assert "Subject: Welcome, Ann" in mail["raw"]

    on_disk = read_mailbox(mailbox)
    assert len(on_disk) == 1
    assert on_disk[0] == mail


def test_multipart_unicode_mail_and_login_with_any_credentials(sink: SmtpSink) -> None:
    message = _mail("zoë@example.com", "Réservation confirmée ✓", "Chambre 101, 2 nuits.\n")
    message.add_alternative("<p>Chambre 101, 2 nuits.</p>", subtype="html")
    _send(sink.port, message, login=True)

    mail = sink.wait_for(lambda m: m["to"] == ["zoë@example.com"], timeout=5)
    assert mail["subject"] == "Réservation confirmée ✓"
    assert mail["body"] == "Chambre 101, 2 nuits.\n"  # the text part, not the HTML


@pytest.mark.parametrize(
    ("address", "code"), [("bob+tempfail@example.com", 451), ("bob+fail@example.com", 550)]
)
def test_failure_recipients_are_refused(sink: SmtpSink, address: str, code: int) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(sink.port, _mail(address, "never delivered", "x"))
    assert refused.value.recipients[address][0] == code
    _send(sink.port, _mail("carol@example.com", "after the failure", "x"))
    sink.wait_for(lambda m: m["subject"] == "after the failure", timeout=5)
    assert [m["subject"] for m in sink.messages] == ["after the failure"]


def test_wait_for_times_out_with_a_useful_message(sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError, match="0 received"):
        sink.wait_for(lambda m: True, timeout=0.2)


def test_read_mailbox_tolerates_a_missing_file_and_a_half_written_line(tmp_path: Path) -> None:
    path = tmp_path / "mailbox.jsonl"
    assert read_mailbox(path) == []
    path.write_text('{"subject": "complete", "to": []}\n{"subject": "half-wri', encoding="utf-8")
    assert [m["subject"] for m in read_mailbox(path)] == ["complete"]


def test_cli_runs_until_sigterm_and_other_processes_read_its_mailbox(mailbox: Path) -> None:
    port = free_port_block(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stack.smtp_sink", "--port", str(port), "--mailbox", str(mailbox)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once the sink accepts connections
        assert f"listening on 127.0.0.1:{port}" in banner
        _send(port, _mail("dan@example.com", "From the CLI sink", "hello\n"))

        mail = wait_for_mailbox(mailbox, lambda m: m["subject"] == "From the CLI sink", timeout=5)
        assert mail["to"] == ["dan@example.com"]
        assert mail["body"] == "hello\n"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
