"""The events this service publishes, as payloads of their Avro contracts (contracts/events)."""

from __future__ import annotations

from typing import Any

from room_service.domain.model import Reservation, Room

RESERVATION_CREATED = "ReservationCreated"
RESERVATION_CANCELLED = "ReservationCancelled"


def reservation_created(reservation: Reservation, room: Room) -> dict[str, Any]:
    """``ReservationCreated`` v2: inventory confirms the hold, member logs it, notification mails."""
    return {
        "reservation_id": reservation.reservation_id,
        "member_id": reservation.member_id,
        "room_id": reservation.room_id,
        "check_in": reservation.check_in,
        "check_out": reservation.check_out,
        "nights": reservation.nights,
        "created_at": reservation.created_at,
        "room_name": room.name,  # since v2
    }


def reservation_cancelled(reservation: Reservation) -> dict[str, Any]:
    """``ReservationCancelled`` v1: inventory releases the nights, member logs it, notification mails."""
    if reservation.cancelled_at is None:
        raise ValueError(f"reservation {reservation.reservation_id} is not cancelled")
    return {
        "reservation_id": reservation.reservation_id,
        "member_id": reservation.member_id,
        "room_id": reservation.room_id,
        "check_in": reservation.check_in,
        "check_out": reservation.check_out,
        "cancelled_at": reservation.cancelled_at,
    }
