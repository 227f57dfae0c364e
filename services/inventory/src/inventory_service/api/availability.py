"""Public: availability of a room per night."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from common.openapi import PUBLIC, problem_responses
from inventory_service.api.deps import Inventory
from inventory_service.api.schemas import AvailabilityOut, NightOut

router = APIRouter(tags=["availability"])


@router.get(
    "/api/v1/availability",
    summary="Capacity, held, booked and available units of a room, per night",
    responses=problem_responses(
        described={
            404: "Room unknown to inventory",
            422: "Bad dates: missing, not YYYY-MM-DD, `to` not after `from`, or over 90 nights",
        }
    ),
    openapi_extra=PUBLIC,
)
def get_availability(
    inventory: Inventory,
    room_id: Annotated[str, Query(min_length=1, max_length=50, examples=["r101"])],
    start: Annotated[
        date, Query(alias="from", description="First night (inclusive)", examples=["2099-01-10"])
    ],
    end: Annotated[
        date,
        Query(alias="to", description="Last night is the day before (exclusive)", examples=["2099-01-12"]),
    ],
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
