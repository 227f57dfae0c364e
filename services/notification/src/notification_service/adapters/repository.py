"""Contacts and notifications in the caller's session (unit of work)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from notification_service.adapters.orm import ContactRow, NotificationRow
from notification_service.domain.notifications import PENDING, SENDING, Contact, Notification


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
            )
        )
        self._session.flush()  # the unique event_id refuses a second notification right here

    def for_member(self, member_id: str) -> list[Notification]:
        """The member's notifications, newest first."""
        rows = self._session.scalars(
            select(NotificationRow)
            .where(NotificationRow.member_id == member_id)
            .order_by(NotificationRow.created_at.desc(), NotificationRow.notification_id)
        )
        return [_to_notification(row) for row in rows]

    def get(self, notification_id: str) -> Notification | None:
        row = self._session.get(NotificationRow, notification_id)
        return _to_notification(row) if row is not None else None

    # -- the sender's side ---------------------------------------------------------------

    def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of pending notifications whose next attempt is due, oldest first."""
        return list(
            self._session.scalars(
                select(NotificationRow.notification_id)
                .where(NotificationRow.status == PENDING, NotificationRow.next_attempt_at <= now)
                .order_by(NotificationRow.next_attempt_at, NotificationRow.created_at)
                .limit(limit)
            )
        )

    def claim(self, notification_id: str) -> Notification | None:
        """Move one pending notification to "sending" (counting the attempt); None if someone
        else claimed it first. The conditional UPDATE is the lock: only one claimer wins."""
        result = self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.notification_id == notification_id, NotificationRow.status == PENDING)
            .values(status=SENDING, attempts=NotificationRow.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        return self.get(notification_id)

    def finish(
        self,
        notification_id: str,
        status: str,
        *,
        sent_at: datetime | None = None,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of an attempt of a notification this sender claimed."""
        values: dict[str, object] = {"status": status, "last_error": error}
        if sent_at is not None:
            values["sent_at"] = sent_at
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        self._session.execute(
            update(NotificationRow)
            .where(NotificationRow.notification_id == notification_id, NotificationRow.status == SENDING)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

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
    )
