"""The room service's tables: its own metadata, its own database."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import UtcDateTime
from common.idempotency import idempotency_table
from common.messaging import messaging_tables


class Base(DeclarativeBase):
    pass


class RoomRow(Base):
    __tablename__ = "rooms"

    room_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    capacity: Mapped[int] = mapped_column(Integer)
    nightly_rate: Mapped[int] = mapped_column(Integer)


class ReservationRow(Base):
    __tablename__ = "reservations"
    __table_args__ = (
        # The database backs the domain's rules up: no row can break them, whatever the code does.
        CheckConstraint("check_out > check_in", name="ck_reservations_dates"),
        CheckConstraint("status IN ('confirmed', 'cancelled')", name="ck_reservations_status"),
        # "My reservations", newest first.
        Index("ix_reservations_member_created", "member_id", "created_at"),
    )

    reservation_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64))
    room_id: Mapped[str] = mapped_column(String(32), ForeignKey("rooms.room_id"))
    check_in: Mapped[date] = mapped_column(Date)
    check_out: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


metadata = Base.metadata
messaging = messaging_tables(metadata)
idempotency_keys = idempotency_table(metadata)
