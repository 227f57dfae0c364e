"""Sending mail over SMTP with aiosmtplib, on one connection kept open between mails.

The sender is a plain background thread (like the outbox relay and the consumers), and
aiosmtplib is async: the mailer owns a small event loop of its own (``asyncio.Runner``), never
the app's, and keeps its SMTP connection open from one mail to the next — an SMTP session is
a TCP (and TLS, and login) handshake that a queue of mails need not repeat. A connection found
closed when a mail starts (the server timed it out, or restarted) is replaced once, at once;
any other failure drops it, and the next mail opens a new one.
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
        self._runner: asyncio.Runner | None = None
        self._client: aiosmtplib.SMTP | None = None
        self.connections_opened = 0  # SMTP sessions started (one per server restart, ideally)

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
        if self._runner is None:
            self._runner = asyncio.Runner()
        try:
            self._runner.run(asyncio.wait_for(self._deliver(self.message(notification)), 3 * self._timeout))
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
            self._drop()
            raise MailError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Say QUIT and close the connection and the mailer's event loop (idempotent)."""
        if self._runner is None:
            return
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                self._runner.run(asyncio.wait_for(client.quit(), self._timeout))
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
        self._runner.close()
        self._runner = None

    async def _deliver(self, message: EmailMessage) -> None:
        reused = self._client is not None and self._client.is_connected
        client = await self._connected()
        try:
            await client.send_message(message)
        except aiosmtplib.SMTPServerDisconnected:
            if not reused:
                raise
            # The kept connection had been closed by the server: nothing of this mail went
            # through it. Once more, on a new one.
            self._drop()
            await (await self._connected()).send_message(message)

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self._timeout,
            start_tls=self._starttls,
            username=self._username,
            password=self._password,
        )
        await client.connect()
        self._client = client
        self.connections_opened += 1
        return client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
