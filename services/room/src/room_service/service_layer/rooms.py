"""The rooms catalog (read-only for users; the demo rooms come from ``seed.py``)."""

from __future__ import annotations

from common.db import Database
from room_service.adapters.repositories import RoomRepository
from room_service.domain.errors import RoomNotFound
from room_service.domain.model import Room


class RoomCatalog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[Room]:
        with self._db.read() as session:
            return RoomRepository(session).all()

    def get(self, room_id: str) -> Room:
        """The room, or ``RoomNotFound`` (404)."""
        with self._db.read() as session:
            room = RoomRepository(session).get(room_id)
        if room is None:
            raise RoomNotFound(room_id)
        return room
