"""Route dependencies: the use cases wired in ``bootstrap.py`` (on ``app.state``) and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.auth import UserPrincipal, current_user
from common.idempotency import required_idempotency_key
from room_service.service_layer.reservations import Reservations
from room_service.service_layer.rooms import RoomCatalog


def _reservations(request: Request) -> Reservations:
    service: Reservations = request.app.state.reservations
    return service


def _rooms(request: Request) -> RoomCatalog:
    catalog: RoomCatalog = request.app.state.rooms
    return catalog


ReservationsDep = Annotated[Reservations, Depends(_reservations)]
RoomsDep = Annotated[RoomCatalog, Depends(_rooms)]
User = Annotated[UserPrincipal, Depends(current_user)]
IdempotencyKey = Annotated[str, Depends(required_idempotency_key)]
