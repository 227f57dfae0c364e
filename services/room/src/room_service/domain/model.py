"""Rooms and reservations: the booking rules, pure and deterministic (the clock is passed in)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from room_service.domain.errors import FieldError, InvalidStay

MAX_NIGHTS = 30

# Reservation ids derived from (member, idempotency key) live in this namespace.
RESERVATION_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://reservations.example/room/reservations")


@dataclass(frozen=True)
class Room:
    """A bookable room of the catalog."""

    room_id: str
    name: str
    description: str
    capacity: int  # guests it sleeps
    nightly_rate: int  # whole currency units per night


@dataclass(frozen=True)
class Stay:
    """Nights from ``check_in`` up to (not including) ``check_out``."""

    check_in: date
    check_out: date

    @property
    def nights(self) -> int:
        return (self.check_out - self.check_in).days

    @classmethod
    def requested(cls, check_in: date, check_out: date, *, today: date) -> Stay:
        """A stay that may be booked ``today``, or ``InvalidStay`` listing every broken rule."""
        errors: list[FieldError] = []
        if check_in < today:
            errors.append(FieldError("check_in", "check_in must not be in the past.", "date_in_past"))
        nights = (check_out - check_in).days
        if nights <= 0:
            errors.append(FieldError("check_out", "check_out must be after check_in.", "date_order"))
        elif nights > MAX_NIGHTS:
            errors.append(
                FieldError("check_out", f"A stay is at most {MAX_NIGHTS} nights (got {nights}).", "too_long")
            )
        if errors:
            raise InvalidStay(errors)
        return cls(check_in, check_out)


class ReservationStatus(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


def reservation_id_for(member_id: str, idempotency_key: str) -> str:
    """The reservation id a (member, idempotency key) pair stands for.

    Deterministic on purpose: two copies of one request racing each other ask inventory to hold
    the *same* reservation id (which it deduplicates), so a lost race leaves no orphan hold.
    """
    return str(uuid.uuid5(RESERVATION_ID_NAMESPACE, f"{member_id}\n{idempotency_key}"))


@dataclass
class Reservation:
    """A member's booking of one room for one stay."""

    reservation_id: str
    member_id: str
    room_id: str
    check_in: date
    check_out: date
    status: ReservationStatus
    created_at: datetime
    cancelled_at: datetime | None = None

    @classmethod
    def confirm(
        cls, reservation_id: str, member_id: str, room_id: str, stay: Stay, *, now: datetime
    ) -> Reservation:
        """A new reservation (its inventory hold is already taken: hence confirmed)."""
        return cls(
            reservation_id=reservation_id,
            member_id=member_id,
            room_id=room_id,
            check_in=stay.check_in,
            check_out=stay.check_out,
            status=ReservationStatus.CONFIRMED,
            created_at=now,
        )

    @property
    def nights(self) -> int:
        return (self.check_out - self.check_in).days

    def cancel(self, *, now: datetime) -> bool:
        """Cancel; False when it already was (cancelling is idempotent: nothing changes)."""
        if self.status is ReservationStatus.CANCELLED:
            return False
        self.status = ReservationStatus.CANCELLED
        self.cancelled_at = now
        return True
