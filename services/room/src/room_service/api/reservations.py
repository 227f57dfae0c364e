"""``/api/v1/reservations``: a member's reservations (a valid user token is required)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from common.errors import PROBLEM_JSON
from common.idempotency import idempotency_key_openapi
from room_service.api.deps import IdempotencyKey, ReservationsDep, User
from room_service.api.schemas import NewReservation, ReservationList, ReservationOut

router = APIRouter(prefix="/api/v1/reservations", tags=["reservations"])

REPLAYED_HEADER = "Idempotent-Replayed"


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {}}}


@router.post(
    "",
    status_code=201,
    response_model=ReservationOut,
    summary="Reserve a room",
    description="Checks the member and holds the nights synchronously, then stores the reservation "
    "and announces it (ReservationCreated). Send an `Idempotency-Key`: a retry with the same key "
    "and body gets the first answer back (header `Idempotent-Replayed: true`) and books nothing.",
    responses={
        400: _problem("No (or a malformed) Idempotency-Key, or a body that is not JSON"),
        401: _problem("No valid access token"),
        403: _problem("The member is not active"),
        404: _problem("No such room"),
        409: _problem("No member profile yet (see Retry-After), or no availability"),
        422: _problem("Invalid dates or body, or the key was used with another body"),
        503: _problem("A dependency is unavailable; retry after Retry-After with the same key"),
        504: _problem("The request's time budget ran out"),
    },
    openapi_extra=idempotency_key_openapi(),
)
async def create_reservation(
    body: NewReservation, user: User, key: IdempotencyKey, reservations: ReservationsDep
) -> JSONResponse:
    answer = await reservations.create(user.user_id, key, body.room_id, body.check_in, body.check_out)
    headers = {REPLAYED_HEADER: "true"} if answer.replayed else None
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


@router.get("", summary="My reservations, newest first")
def list_reservations(user: User, reservations: ReservationsDep) -> ReservationList:
    return ReservationList(items=[ReservationOut.of(r) for r in reservations.list_mine(user.user_id)])


@router.get(
    "/{reservation_id}",
    summary="One of my reservations",
    responses={404: _problem("No such reservation of mine")},
)
def get_reservation(reservation_id: str, user: User, reservations: ReservationsDep) -> ReservationOut:
    return ReservationOut.of(reservations.get_mine(user.user_id, reservation_id))


@router.delete(
    "/{reservation_id}",
    summary="Cancel one of my reservations (idempotent)",
    responses={404: _problem("No such reservation of mine")},
)
def cancel_reservation(reservation_id: str, user: User, reservations: ReservationsDep) -> ReservationOut:
    return ReservationOut.of(reservations.cancel(user.user_id, reservation_id))
