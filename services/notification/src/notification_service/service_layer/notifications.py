"""Notification use cases: keep the contact copy, queue one mail per event, list them.

The event handlers run inside the consumer's transaction (together with its processed-events
row). They only *record* a mail ("pending"); the sender (``sender.py``) delivers it after the
commit. Never sending inside the consumer's transaction is what rules out a second mail: a
transaction that fails after a successful send would be redelivered and send again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import event as orm_events
from sqlalchemy.orm import Session

from common.clock import Clock, utc_now
from common.context import current_trace
from common.db import Database
from common.errors import Conflict, NotFound
from common.pagination import Page, PageRequest
from notification_service.adapters.repository import ContactRepository, NotificationRepository
from notification_service.domain import notifications as rules
from notification_service.domain.notifications import Contact, Mail, Notification

log = logging.getLogger(__name__)

MailFor = Callable[[Contact, Mapping[str, Any]], Mail]


class ContactMissing(Exception):
    """No contact copy for the member yet: its UserRegistered (another topic) hasn't been
    processed. Transient on purpose — the consumer retries with backoff, then dead-letters."""

    def __init__(self, member_id: str) -> None:
        super().__init__(f"no contact copy yet for member {member_id}; retrying until it arrives")


class Notifier:
    """What the consumers do with each event (inside their transaction)."""

    def __init__(self, clock: Clock = utc_now, on_queued: Callable[[], None] = lambda: None) -> None:
        self._clock = clock
        self._on_queued = on_queued  # e.g. the sender's wake(): mail goes out right after commit

    def user_registered(self, session: Session, event_id: str, event: Mapping[str, Any]) -> None:
        """Contact copy (as version 1) and the welcome mail."""
        registered = Contact(
            event["user_id"], event["email"], event["display_name"], rules.REGISTERED_VERSION
        )
        contact = self._keep_newest(session, registered)
        self._queue(session, event_id, "UserRegistered", contact, rules.welcome(contact))

    def member_updated(self, session: Session, event_id: str, event: Mapping[str, Any]) -> None:
        """Update the contact copy, unless this version is older than the one we hold. No mail."""
        self._keep_newest(
            session, Contact(event["member_id"], event["email"], event["display_name"], event["version"])
        )

    def mail_member(
        self,
        session: Session,
        event_id: str,
        event_type: str,
        member_id: str,
        event: Mapping[str, Any],
        mail_for: MailFor,
    ) -> None:
        """Queue the mail ``mail_for`` writes for this event, to the member's contact address."""
        contact = ContactRepository(session).get(member_id)
        if contact is None:
            raise ContactMissing(member_id)
        self._queue(session, event_id, event_type, contact, mail_for(contact, event))

    def _keep_newest(self, session: Session, incoming: Contact) -> Contact:
        contacts = ContactRepository(session)
        stored = contacts.get(incoming.member_id)
        if stored is not None and not stored.superseded_by(incoming.version):
            return stored
        contacts.put(incoming, self._clock())
        return incoming

    def _queue(self, session: Session, event_id: str, event_type: str, contact: Contact, mail: Mail) -> None:
        notifications = NotificationRepository(session)
        if notifications.exists(event_id):  # belt and braces: the consumer already dedupes
            return
        now = self._clock()
        notification = Notification(
            notification_id=str(uuid.uuid4()),
            event_id=event_id,
            event_type=event_type,
            member_id=contact.member_id,
            recipient=contact.email,
            subject=mail.subject,
            body=mail.body,
            status=rules.PENDING,
            attempts=0,
            created_at=now,
            sent_at=None,
            queued_at=now,
            traceparent=trace.header() if (trace := current_trace()) else None,
        )
        notifications.add(notification, next_attempt_at=now)
        orm_events.listen(session, "after_commit", lambda _session: self._on_queued(), once=True)


class NotificationQueries:
    """What the HTTP routes read."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def for_member(self, member_id: str, page: PageRequest) -> Page[Notification]:
        """One page of the member's notifications, newest first."""
        with self._db.read() as session:
            return NotificationRepository(session).for_member(member_id, page)

    def contact(self, member_id: str) -> Contact:
        with self._db.read() as session:
            contact = ContactRepository(session).get(member_id)
        if contact is None:
            raise NotFound("No contact copy yet: it arrives shortly after sign-up.")
        return contact


class NotificationNotFound(NotFound):
    def __init__(self, notification_id: str) -> None:
        super().__init__(f"No notification {notification_id}.")


class NotDoneYet(Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(
            f"The mail is {status}: it will be (re-)tried anyway; re-send it once sent or failed."
        )


class Resends:
    """The admin's re-send: a sent or failed mail back to the queue, its retry horizon restarted."""

    def __init__(
        self, db: Database, clock: Clock = utc_now, on_queued: Callable[[], None] = lambda: None
    ) -> None:
        self._db = db
        self._clock = clock
        self._on_queued = on_queued

    def resend(self, notification_id: str, *, by: str) -> Notification:
        """Queue the mail again (same Message-ID); 404 if unknown, 409 while pending or sending."""
        with self._db.transaction() as session:
            notifications = NotificationRepository(session)
            if not notifications.requeue(notification_id, self._clock()):
                current = notifications.get(notification_id)
                if current is None:
                    raise NotificationNotFound(notification_id)
                raise NotDoneYet(current.status)
            queued = notifications.get(notification_id)
        if queued is None:  # requeued in this very transaction: cannot happen
            raise NotificationNotFound(notification_id)
        log.info(
            "mail %s (%s) queued again by admin %s",
            notification_id,
            queued.event_type,
            by,
            extra={"notification_id": notification_id},
        )
        self._on_queued()
        return queued
