"""Contacts and notifications in the caller's session (unit of work)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.pagination import Page, PageRequest, keyset, page_of
from notification_service.adapters.orm import ContactRow, NotificationRow
from notification_service.domain.notifications import FAILED, PENDING, SENDING, SENT, Contact, Notification


class ContactRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, member_id: str) -> Contact | None:
        row = self._session.get(ContactRow, member_id)
        if row is None:
            return None
        return Contact(row.member_id, row.email, row.display_name, row.version)

    def put(self, contact: Contact, now: datetime) -> None:
        """Insert or overwrite the copy (the caller decided it is newer)."""
        row = self._session.get(ContactRow, contact.member_id)
        if row is None:
            row = ContactRow(member_id=contact.member_id)
            self._session.add(row)
        row.email, row.display_name = contact.email, contact.display_name
        row.version, row.updated_at = contact.version, now
        # A concurrent twin (PostgreSQL) fails here, inside the transaction: the consumer retries.
        self._session.flush()


class NotificationRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def exists(self, event_id: str) -> bool:
        found = self._session.scalar(
            select(NotificationRow.notification_id).where(NotificationRow.event_id == event_id)
        )
        return found is not None

    def add(self, notification: Notification, next_attempt_at: datetime) -> None:
        self._session.add(
            NotificationRow(
                notification_id=notification.notification_id,
                event_id=notification.event_id,
                event_type=notification.event_type,
                member_id=notification.member_id,
                recipient=notification.recipient,
                subject=notification.subject,
                body=notification.body,
                status=notification.status,
                attempts=notification.attempts,
                next_attempt_at=next_attempt_at,
                created_at=notification.created_at,
                sent_at=notification.sent_at,
                queued_at=notification.queued_at,
                traceparent=notification.traceparent,
            )
        )
        self._session.flush()  # the unique event_id refuses a second notification right here

    def for_member(self, member_id: str, page: PageRequest) -> Page[Notification]:
        """One page of the member's notifications, newest first."""
        statement = select(NotificationRow).where(NotificationRow.member_id == member_id)
        rows = self._session.scalars(
            keyset(statement, NotificationRow.created_at, NotificationRow.notification_id, page)
        ).all()
        found = [_to_notification(row) for row in rows]
        return page_of(found, page, lambda n: (n.created_at, n.notification_id))

    def get(self, notification_id: str) -> Notification | None:
        row = self._session.get(NotificationRow, notification_id)
        return _to_notification(row) if row is not None else None

    # -- the sender's side ---------------------------------------------------------------

    def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of notifications to attempt now, oldest first: pending ones that are due, and
        "sending" ones whose lease expired (their sender died before recording the outcome)."""
        return list(
            self._session.scalars(
                select(NotificationRow.notification_id)
                .where(NotificationRow.status.in_((PENDING, SENDING)), NotificationRow.next_attempt_at <= now)
                .order_by(NotificationRow.next_attempt_at, NotificationRow.created_at)
                .limit(limit)
            )
        )

    def claim(self, notification_id: str, now: datetime, lease_until: datetime) -> Notification | None:
        """Take a due notification for one attempt: "sending" until ``lease_until``, attempts + 1.

        None if it is not due (any more): another sender claimed it first. The conditional
        UPDATE is the lock: only one claimer wins. The new ``attempts`` is the claim's fencing
        token: ``finish`` only records an outcome for the claim that is still current.
        """
        result = self._session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.notification_id == notification_id,
                NotificationRow.status.in_((PENDING, SENDING)),
                NotificationRow.next_attempt_at <= now,
            )
            .values(status=SENDING, attempts=NotificationRow.attempts + 1, next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        return self.get(notification_id)

    def finish(
        self,
        claimed: Notification,
        status: str,
        *,
        sent_at: datetime | None = None,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome of the attempt ``claimed`` (as ``claim`` returned it); False when
        that claim is no longer current (its lease expired and the mail was claimed again)."""
        values: dict[str, object] = {"status": status, "last_error": error}
        if sent_at is not None:
            values["sent_at"] = sent_at
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        result = self._session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.notification_id == claimed.notification_id,
                NotificationRow.status == SENDING,
                NotificationRow.attempts == claimed.attempts,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    def requeue(self, notification_id: str, now: datetime) -> bool:
        """Put a sent or failed notification back in the queue (admin re-send), its horizon
        restarting now; False if it is pending or being sent. ``attempts`` keeps counting."""
        result = self._session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.notification_id == notification_id,
                NotificationRow.status.in_((SENT, FAILED)),
            )
            .values(status=PENDING, next_attempt_at=now, queued_at=now, sent_at=None, last_error=None)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    def count_by_status(self) -> dict[str, int]:
        rows = self._session.execute(
            select(NotificationRow.status, func.count()).group_by(NotificationRow.status)
        )
        return {status: int(count) for status, count in rows}


def _to_notification(row: NotificationRow) -> Notification:
    return Notification(
        notification_id=row.notification_id,
        event_id=row.event_id,
        event_type=row.event_type,
        member_id=row.member_id,
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        status=row.status,
        attempts=row.attempts,
        created_at=row.created_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
        queued_at=row.queued_at,
        traceparent=row.traceparent,
    )
