"""Response bodies of the notification API."""

from __future__ import annotations

from datetime import datetime

from common.pagination import PageBody
from common.schemas import ViewModel


class NotificationItem(ViewModel):
    notification_id: str
    event_id: str
    event_type: str
    recipient: str
    subject: str
    status: str  # pending | sending | sent | failed
    created_at: datetime
    sent_at: datetime | None


class NotificationList(PageBody):
    items: list[NotificationItem]


class ContactCopy(ViewModel):
    member_id: str
    email: str
    display_name: str | None
    version: int
