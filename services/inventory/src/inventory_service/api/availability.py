"""Public: availability of a room per night."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from inventory_service.api.deps import Inventory
from inventory_service.api.schemas import AvailabilityOut, NightOut

router = APIRouter(tags=["availability"])


@router.get(
    "/api/v1/availability",
    summary="Capacity, held, booked and available units of a room, per night",
    responses={404: {"description": "Room unknown to inventory"}, 422: {"description": "Bad dates"}},
)
def get_availability(
    inventory: Inventory,
    room_id: Annotated[str, Query(min_length=1, max_length=50)],
    start: Annotated[date, Query(alias="from", description="First night (inclusive)")],
    end: Annotated[date, Query(alias="to", description="Last night is the day before (exclusive)")],
) -> AvailabilityOut:
    """Every night in ``[from, to)`` (at most 90); nights inventory has no row for show 0 capacity."""
    counts = inventory.availability(room_id, start, end)
    return AvailabilityOut(
        room_id=room_id,
        nights=[
            NightOut(date=c.night, capacity=c.capacity, held=c.held, booked=c.booked, available=c.available)
            for c in counts
        ],
    )
