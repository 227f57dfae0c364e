"""Sending one mail over SMTP with aiosmtplib.

The sender is a plain background thread (like the outbox relay and the consumers), and
aiosmtplib is async: each delivery runs in its own short-lived event loop (``asyncio.run``).
That keeps the thread simple and never touches the app's event loop; one loop per mail costs
microseconds next to an SMTP round trip.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from notification_service.domain.notifications import Notification


class MailError(Exception):
    """The mail was not accepted."""

    permanent = False


class MailRejected(MailError):
    """The server refused this recipient or message for good (5xx): retrying can't help."""

    permanent = True


class SmtpMailer:
    """Delivers notifications to one SMTP server."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        timeout: float = 10.0,
        starttls: bool = False,
        username: str = "",
        password: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self._timeout = timeout
        self._starttls = starttls
        self._username = username or None
        self._password = password or None

    def message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = notification.recipient
        message["Subject"] = notification.subject
        message["Date"] = formatdate(usegmt=True)
        # The same id on every attempt, lease-expired re-send and admin re-send: mail clients
        # collapse the (rare) duplicate, and anyone can tell it from a second mail.
        message["Message-ID"] = notification.message_id
        message["X-Event-ID"] = notification.event_id
        message["X-Event-Type"] = notification.event_type
        message.set_content(notification.body)
        return message

    def send(self, notification: Notification) -> None:
        """Deliver or raise ``MailError`` (``MailRejected`` when it is permanent)."""
        # ``timeout`` bounds each SMTP step; the whole send is bounded too (3 x timeout), so it
        # always ends within the sender's lease (settings check the lease is longer).
        send = aiosmtplib.send(
            self.message(notification),
            hostname=self.host,
            port=self.port,
            timeout=self._timeout,
            start_tls=self._starttls,
            username=self._username,
            password=self._password,
        )
        try:
            asyncio.run(asyncio.wait_for(send, timeout=3 * self._timeout))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            error = MailRejected if codes and min(codes) >= 500 else MailError
            raise error(f"recipient refused: {'; '.join(str(r) for r in exc.recipients)}") from exc
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
            error = MailRejected if exc.code >= 500 else MailError
            raise error(f"SMTP {exc.code}: {exc.message}") from exc
        # Anything else — down, unreachable, timed out, or refusing us (sender, login) — is
        # about the server or our configuration, not this mail: worth retrying.
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc
