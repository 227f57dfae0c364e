"""Internal (caller: room): take and release holds."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from common.auth import require_service
from common.openapi import SERVICE, problem_responses
from inventory_service.api.deps import Inventory
from inventory_service.api.schemas import HoldIn, HoldOut
from inventory_service.domain.model import Stay

router = APIRouter(
    prefix="/internal/holds", tags=["internal"], dependencies=[Depends(require_service("room"))]
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Hold one unit on every night of a stay, atomically (idempotent by reservation id)",
    responses={
        200: {"model": HoldOut, "description": "The same reservation again: its existing hold"},
        **problem_responses(
            400,
            401,
            403,
            described={
                404: "Room unknown to inventory",
                409: "No unit free on some night (the first one is named)",
                422: "Bad dates, or the reservation id already holds another room or dates",
            },
        ),
    },
    openapi_extra=SERVICE,
)
def place_hold(body: HoldIn, response: Response, inventory: Inventory) -> HoldOut:
    hold, created = inventory.place_hold(
        body.reservation_id, Stay(body.room_id, body.check_in, body.check_out)
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return HoldOut(
        reservation_id=hold.reservation_id,
        room_id=hold.room_id,
        check_in=hold.check_in,
        check_out=hold.check_out,
        status=hold.status.value,
        expires_at=hold.expires_at,
    )


@router.delete(
    "/{reservation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Release an unconfirmed hold (room's compensation); idempotent, unknown ids too",
    responses=problem_responses(401, 403, 422),
    openapi_extra=SERVICE,
)
def release_hold(
    reservation_id: Annotated[str, Path(min_length=1, max_length=64)], inventory: Inventory
) -> Response:
    inventory.release_hold(reservation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
