"""The notification service's tables: its own metadata, its own database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import UtcDateTime
from common.messaging import messaging_tables


class Base(DeclarativeBase):
    pass


class ContactRow(Base):
    """The member's contact copy, kept from UserRegistered and MemberUpdated."""

    __tablename__ = "contacts"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class NotificationRow(Base):
    """One mail for one event: ``event_id`` is unique, so an event can never queue two."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", name="uq_notifications_event_id"),
        # The sender's query: pending mail that is due, sending mail whose lease expired.
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
    )

    notification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(100))
    member_id: Mapped[str] = mapped_column(String(36), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # "pending": when the next attempt is due; "sending": when the sender's lease expires.
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # When the mail was (re-)queued: its retry horizon counts from here (NULL: created_at).
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # W3C traceparent of the consumer span that queued the mail: the SMTP send's span continues it.
    traceparent: Mapped[str | None] = mapped_column(String(55), nullable=True)


metadata = Base.metadata
messaging = messaging_tables(metadata)
