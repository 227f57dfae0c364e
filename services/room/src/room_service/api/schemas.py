"""Request and response bodies of the room API (docs/api.md, "room")."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from common.pagination import PageBody
from common.schemas import ViewModel
from room_service.domain.model import Reservation

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_only(value: Any) -> Any:
    # Pydantic would also take 1735689600 or "2025-01-01T00:00:00" as a date; the API says
    # dates are "YYYY-MM-DD", so anything else is a clear 422 rather than a surprise.
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value
    raise ValueError("must be a date as YYYY-MM-DD")


IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]


class RoomOut(ViewModel):
    room_id: str = Field(examples=["r101"])
    name: str
    description: str
    capacity: int = Field(description="How many guests the room sleeps.")
    nightly_rate: int = Field(description="Price per night, in whole currency units.")


class RoomList(BaseModel):
    items: list[RoomOut]


class NewReservation(BaseModel):
    # The example's dates are far ahead so it stays valid (check_in may not be in the past).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"room_id": "r101", "check_in": "2099-01-10", "check_out": "2099-01-12"}]
        },
    )

    room_id: str = Field(min_length=1, max_length=32, examples=["r101"])
    check_in: IsoDate = Field(description="First night (YYYY-MM-DD, UTC calendar), not in the past.")
    check_out: IsoDate = Field(description="Departure day: after check_in, at most 30 nights later.")


class ReservationOut(BaseModel):
    reservation_id: str
    member_id: str
    room_id: str
    check_in: date
    check_out: date
    nights: int
    status: Literal["confirmed", "cancelled"]
    created_at: datetime
    cancelled_at: datetime | None

    @classmethod
    def of(cls, reservation: Reservation) -> ReservationOut:
        return cls(
            reservation_id=reservation.reservation_id,
            member_id=reservation.member_id,
            room_id=reservation.room_id,
            check_in=reservation.check_in,
            check_out=reservation.check_out,
            nights=reservation.nights,
            status=reservation.status.value,
            created_at=reservation.created_at,
            cancelled_at=reservation.cancelled_at,
        )


class ReservationList(PageBody):
    items: list[ReservationOut]


def present_reservation(reservation: Reservation) -> dict[str, Any]:
    """The JSON body of a reservation, exactly as GET answers it (stored for idempotent replays)."""
    return ReservationOut.of(reservation).model_dump(mode="json")
