"""Response bodies of the notification API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from notification_service.domain.notifications import Contact, Notification


class NotificationItem(BaseModel):
    notification_id: str
    event_id: str
    event_type: str
    recipient: str
    subject: str
    status: str  # pending | sending | sent | failed
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, n: Notification) -> NotificationItem:
        return cls(
            notification_id=n.notification_id,
            event_id=n.event_id,
            event_type=n.event_type,
            recipient=n.recipient,
            subject=n.subject,
            status=n.status,
            created_at=n.created_at,
            sent_at=n.sent_at,
        )


class NotificationList(BaseModel):
    items: list[NotificationItem]


class ContactCopy(BaseModel):
    member_id: str
    email: str
    display_name: str | None
    version: int

    @classmethod
    def of(cls, contact: Contact) -> ContactCopy:
        return cls(
            member_id=contact.member_id,
            email=contact.email,
            display_name=contact.display_name,
            version=contact.version,
        )
