"""The inventory service's tables: its own metadata, its own database."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import UtcDateTime
from common.messaging import messaging_tables


class Base(DeclarativeBase):
    pass


class Availability(Base):
    """Counts of one room on one night. The CHECKs make overbooking impossible in the database too."""

    __tablename__ = "availability"
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="ck_availability_capacity"),
        CheckConstraint("held >= 0 AND booked >= 0", name="ck_availability_non_negative"),
        CheckConstraint("held + booked <= capacity", name="ck_availability_within_capacity"),
    )

    room_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    night: Mapped[date] = mapped_column(Date, primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer, nullable=False)
    held: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    booked: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class Hold(Base):
    """One reservation's claim on a room's nights (the idempotency record of ``POST /internal/holds``)."""

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("check_out > check_in", name="ck_holds_dates"),
        # The reaper's query: held holds whose expiry has passed.
        Index("ix_holds_status_expires_at", "status", "expires_at"),
    )

    reservation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(50), nullable=False)
    check_in: Mapped[date] = mapped_column(Date, nullable=False)
    check_out: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


metadata = Base.metadata
messaging = messaging_tables(metadata)
