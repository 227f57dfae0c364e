"""Demo data: the five rooms (inventory seeds 60 days of availability for the same ids)."""

from __future__ import annotations

import logging

from common.db import Database
from room_service.adapters.repositories import RoomRepository
from room_service.domain.model import Room
from room_service.settings import RoomSettings

log = logging.getLogger(__name__)

DEMO_ROOMS = (
    Room("r101", "Garden Single", "A quiet single room opening onto the garden.", 1, 80),
    Room("r102", "Courtyard Double", "A double room over the inner courtyard.", 2, 120),
    Room("r103", "Harbour Twin", "Two beds and a view of the harbour.", 2, 130),
    Room("r104", "Family Suite", "Two bedrooms and a small kitchen, for up to four.", 4, 210),
    Room("r105", "Attic Studio", "Under the roof, with a desk and a skylight.", 2, 95),
)


def seed(settings: RoomSettings) -> None:
    """Insert the demo rooms that are missing (run after migrating; safe to run again)."""
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            added = RoomRepository(session).add_missing(DEMO_ROOMS)
    finally:
        db.dispose()
    log.info("seeded rooms: %s", ", ".join(added) or "none missing")
