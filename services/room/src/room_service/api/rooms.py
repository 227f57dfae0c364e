"""``/api/v1/rooms``: the public catalog (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter

from common.openapi import PUBLIC, problem_responses
from room_service.api.deps import RoomsDep
from room_service.api.schemas import RoomList, RoomOut

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])


@router.get("", summary="List the rooms", openapi_extra=PUBLIC)
def list_rooms(rooms: RoomsDep) -> RoomList:
    return RoomList(items=[RoomOut.of(room) for room in rooms.all()])


@router.get(
    "/{room_id}",
    summary="One room",
    responses=problem_responses(described={404: "No such room"}),
    openapi_extra=PUBLIC,
)
def get_room(room_id: str, rooms: RoomsDep) -> RoomOut:
    return RoomOut.of(rooms.get(room_id))
