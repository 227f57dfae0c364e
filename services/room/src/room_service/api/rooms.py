"""``/api/v1/rooms``: the public catalog (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter

from common.errors import PROBLEM_JSON
from room_service.api.deps import RoomsDep
from room_service.api.schemas import RoomList, RoomOut

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])


@router.get("", summary="List the rooms")
def list_rooms(rooms: RoomsDep) -> RoomList:
    return RoomList(items=[RoomOut.of(room) for room in rooms.all()])


@router.get(
    "/{room_id}",
    summary="One room",
    responses={404: {"description": "No such room", "content": {PROBLEM_JSON: {}}}},
)
def get_room(room_id: str, rooms: RoomsDep) -> RoomOut:
    return RoomOut.of(rooms.get(room_id))
