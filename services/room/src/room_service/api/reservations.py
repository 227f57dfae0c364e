"""``/api/v1/reservations``: a member's reservations (a valid user token is required)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from common.idempotency import idempotency_key_openapi
from common.openapi import USER, Responses, problem_responses
from common.pagination import LIST_ERRORS, Paging, user_pages
from room_service.api.deps import IdempotencyKey, ReservationsDep, User
from room_service.api.schemas import NewReservation, ReservationList, ReservationOut

router = APIRouter(prefix="/api/v1/reservations", tags=["reservations"])
Pages = Annotated[Paging, Depends(user_pages("reservations"))]

REPLAYED_HEADER = "Idempotent-Replayed"

CREATE_ERRORS = problem_responses(
    401,
    described={
        400: "No (or a malformed) Idempotency-Key, or a body that is not JSON",
        403: "The member is not active",
        404: "No such room",
        409: "No member profile yet (see Retry-After), or no availability",
        422: "Invalid dates or body, or the key was used with another body",
        503: "A dependency is unavailable; retry after Retry-After with the same key",
        504: "The request's time budget ran out; retry with the same key",
    },
)
MINE_ERRORS = problem_responses(401, described={404: "No such reservation of mine"})
# What a client does next with a new reservation (OpenAPI links: also how schemathesis chains calls).
_BY_ID = {"reservation_id": "$response.body#/reservation_id"}
CREATED: Responses = {
    201: {
        "description": "The reservation. A retry with the same key gets this answer again, with "
        f"`{REPLAYED_HEADER}: true`.",
        "headers": {
            REPLAYED_HEADER: {
                "description": "`true` when this is the stored answer to an earlier request with the key",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
        "links": {
            "GetReservation": {"operationId": "get_reservation", "parameters": _BY_ID},
            "CancelReservation": {"operationId": "cancel_reservation", "parameters": _BY_ID},
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=ReservationOut,
    summary="Reserve a room",
    description="Checks the member and holds the nights synchronously, then stores the reservation "
    "and announces it (ReservationCreated). Send an `Idempotency-Key`: a retry with the same key "
    "and body gets the first answer back (header `Idempotent-Replayed: true`) and books nothing.",
    operation_id="create_reservation",
    responses=CREATED | CREATE_ERRORS,
    openapi_extra=USER | idempotency_key_openapi(),
)
async def create_reservation(
    body: NewReservation, user: User, key: IdempotencyKey, reservations: ReservationsDep
) -> JSONResponse:
    answer = await reservations.create(user.user_id, key, body.room_id, body.check_in, body.check_out)
    headers = {REPLAYED_HEADER: "true"} if answer.replayed else None
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


@router.get(
    "",
    summary="My reservations, newest first (one page: `limit`, then `cursor` for the next)",
    operation_id="list_reservations",
    responses=LIST_ERRORS,
    openapi_extra=USER,
)
def list_reservations(user: User, paging: Pages, reservations: ReservationsDep) -> ReservationList:
    page = reservations.list_mine(user.user_id, paging.request)
    items = [ReservationOut.of(r) for r in page.items]
    return ReservationList(items=items, next_cursor=paging.cursor_after(page))


@router.get(
    "/{reservation_id}",
    summary="One of my reservations",
    operation_id="get_reservation",
    responses=MINE_ERRORS,
    openapi_extra=USER,
)
def get_reservation(reservation_id: str, user: User, reservations: ReservationsDep) -> ReservationOut:
    return ReservationOut.of(reservations.get_mine(user.user_id, reservation_id))


@router.delete(
    "/{reservation_id}",
    summary="Cancel one of my reservations (idempotent)",
    operation_id="cancel_reservation",
    responses=MINE_ERRORS,
    openapi_extra=USER,
)
def cancel_reservation(reservation_id: str, user: User, reservations: ReservationsDep) -> ReservationOut:
    return ReservationOut.of(reservations.cancel(user.user_id, reservation_id))
