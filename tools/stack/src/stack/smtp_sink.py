"""A local SMTP sink for dev and tests: accepts every mail, delivers none.

Each received mail is kept in memory and, if a mailbox file is given, appended to it as one
JSON line, so other processes (end-to-end tests, the learner's terminal) can read what the
sink run by the stack runner received::

    python -m stack.smtp_sink --port 1025 --mailbox .run/mailbox.jsonl

To let labs make mail fail on purpose, a recipient whose local part ends in ``+tempfail``
(e.g. ``ann+tempfail@example.com``) is refused with ``451`` (temporary: senders retry) and one
ending in ``+fail`` with ``550`` (permanent). Any AUTH credentials are accepted.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import FrameType
from typing import Any, TypedDict

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

__all__ = ["MailRecord", "SmtpSink", "read_mailbox", "wait_for_mailbox"]

DEFAULT_PORT = 1025

MailRecord = TypedDict(
    "MailRecord",
    {
        "from": str,  # envelope sender (MAIL FROM)
        "to": list[str],  # envelope recipients (RCPT TO): where the mail was actually sent
        "subject": str,
        "body": str,  # the text/plain part (else text/html), decoded
        "headers": dict[str, str],
        "raw": str,
        "received_at": str,  # ISO 8601, UTC
    },
)
"""One received mail, as kept in memory and written to the mailbox file."""

MailPredicate = Callable[[MailRecord], bool]


def _to_record(mail_from: str, rcpt_tos: list[str], raw: bytes) -> MailRecord:
    # SMTP carries CRLF line endings; readers of the body expect plain "\n".
    message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
    body = ""
    if isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain", "html"))
        if part is not None:
            try:
                body = str(part.get_content())
            except (LookupError, ValueError):  # unknown charset, broken encoding
                payload = part.get_payload(decode=True)
                body = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    headers: dict[str, str] = {}
    for name, value in message.items():
        headers.setdefault(name, str(value))  # first occurrence wins (e.g. Received chains)
    return {
        "from": mail_from,
        "to": list(rcpt_tos),
        "subject": str(message.get("Subject", "")),
        "body": body,
        "headers": headers,
        "raw": raw.decode("utf-8", errors="replace"),
        "received_at": datetime.now(UTC).isoformat(),
    }


def read_mailbox(path: Path | str) -> list[MailRecord]:
    """All mails recorded in a mailbox file, oldest first; a missing file reads as empty.

    A last line still being written (no newline yet, or not valid JSON) is skipped.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records: list[MailRecord] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _wait(
    fetch: Callable[[], list[MailRecord]], predicate: MailPredicate, timeout: float, where: str
) -> MailRecord:
    deadline = time.monotonic() + timeout
    while True:
        mails = fetch()
        for mail in mails:
            if predicate(mail):
                return mail
        if time.monotonic() >= deadline:
            subjects = [m["subject"] for m in mails[-10:]]
            raise TimeoutError(
                f"no matching mail in {where} within {timeout:.1f} s "
                f"({len(mails)} received; last subjects: {subjects})"
            )
        time.sleep(0.05)


def wait_for_mailbox(path: Path | str, predicate: MailPredicate, timeout: float = 10.0) -> MailRecord:
    """Poll a mailbox file until a mail matches ``predicate``; return it or raise TimeoutError."""
    return _wait(lambda: read_mailbox(path), predicate, timeout, str(path))


class _Handler:
    """aiosmtpd handler: records mails, refuses the ``+fail`` / ``+tempfail`` recipients."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(  # aiosmtpd's hook names
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        local_part = address.rpartition("@")[0].lower()
        if local_part.endswith("+tempfail"):
            return "451 4.3.0 Temporary failure requested by the recipient address"
        if local_part.endswith("+fail"):
            return "550 5.1.1 Permanent failure requested by the recipient address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else str(content).encode("utf-8")
        self._sink._record(_to_record(envelope.mail_from or "", list(envelope.rcpt_tos), raw))
        return "250 Message accepted for delivery"


def _accept_any_login(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    # Services configured with SMTP credentials must work against the sink unchanged.
    return AuthResult(success=True)


class SmtpSink:
    """SMTP server on ``host:port`` (aiosmtpd, in a background thread) that records every mail."""

    def __init__(
        self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", mailbox: Path | str | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.mailbox = Path(mailbox) if mailbox is not None else None
        self._messages: list[MailRecord] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[MailRecord]:
        """A snapshot of the mails received since start (or the last ``clear()``)."""
        with self._lock:
            return list(self._messages)

    @property
    def is_running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._controller is not None

    def start(self) -> None:
        """Listen; returns once the server accepts connections."""
        if self._controller is not None:
            return
        if self.mailbox is not None:
            self.mailbox.parent.mkdir(parents=True, exist_ok=True)
            self.mailbox.touch()  # readers can tell "no mail yet" from "no sink"
        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            enable_SMTPUTF8=True,
            authenticator=_accept_any_login,
            auth_require_tls=False,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def clear(self) -> None:
        """Forget the mails held in memory (the mailbox file is left alone)."""
        with self._lock:
            self._messages.clear()

    def wait_for(self, predicate: MailPredicate, timeout: float = 10.0) -> MailRecord:
        """Poll until a received mail matches ``predicate``; return it or raise TimeoutError."""
        return _wait(lambda: self.messages, predicate, timeout, f"SMTP sink on port {self.port}")

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, record: MailRecord) -> None:
        with self._lock:
            self._messages.append(record)
            if self.mailbox is not None:
                # One write per line, appended: a reader never sees two mails interleaved.
                with self.mailbox.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the sink in the foreground until SIGTERM / SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m stack.smtp_sink", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--mailbox", type=Path, default=None, help="JSON-lines file to append to")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sink = SmtpSink(port=args.port, host=args.host, mailbox=args.mailbox)
    try:
        sink.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    where = f"; mailbox: {args.mailbox}" if args.mailbox else ""
    print(f"SMTP sink listening on {args.host}:{args.port}{where}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
