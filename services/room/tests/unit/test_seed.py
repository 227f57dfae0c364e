"""`python -m room_service seed`: the five demo rooms, idempotently."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from common.db import Database
from common.testing.apps import migrated
from room_service.adapters.orm import RoomRow
from room_service.adapters.repositories import RoomRepository
from room_service.seed import seed
from room_service.settings import RoomSettings

from .test_migrations import MIGRATIONS


def test_seed_adds_the_missing_rooms_only(tmp_path: Path) -> None:
    settings = migrated(RoomSettings(database_url=f"sqlite:///{tmp_path / 'room.db'}"), MIGRATIONS)
    seed(settings)
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:  # an operator renamed a room: seeding again keeps that
            session.execute(update(RoomRow).where(RoomRow.room_id == "r101").values(name="Renamed"))
        seed(settings)
        with db.read() as session:
            rooms = RoomRepository(session).all()
    finally:
        db.dispose()
    assert [r.room_id for r in rooms] == ["r101", "r102", "r103", "r104", "r105"]
    assert rooms[0].name == "Renamed"
