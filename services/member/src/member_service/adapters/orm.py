"""The member service's tables: its own metadata, its own database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import UtcDateTime
from common.messaging import messaging_tables


class Base(DeclarativeBase):
    pass


class MemberRow(Base):
    """A member profile (see ``domain.members.Member``)."""

    __tablename__ = "members"

    member_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    tier: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class HistoryRow(Base):
    """One history entry. No foreign key to ``members``: events from other topics may arrive
    before the member's profile does, and must not be lost."""

    __tablename__ = "member_history"
    __table_args__ = (UniqueConstraint("member_id", "event_id", name="uq_member_history_member_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(String(36), index=True)
    event_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(40))
    ref_id: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


metadata = Base.metadata
messaging = messaging_tables(metadata)
