"""Demo data: five rooms with 60 nights of availability from today (UTC). Idempotent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from common.db import Database
from inventory_service.service_layer.inventory import InventoryService
from inventory_service.settings import InventorySettings

# Room ids as in room's catalogue; r105 has a single unit, handy for the "last unit" demo.
DEMO_ROOMS: dict[str, int] = {"r101": 2, "r102": 2, "r103": 2, "r104": 2, "r105": 1}
DEMO_DAYS = 60


def seed(settings: InventorySettings, *, today: date | None = None) -> None:
    """Add the nights missing in ``[today, today + 60)``; existing nights keep their counts."""
    db = Database(settings.database_url)
    try:
        inventory = InventoryService(db, hold_ttl=timedelta(seconds=settings.hold_ttl_s))
        inventory.add_missing_nights(DEMO_ROOMS, today or datetime.now(UTC).date(), DEMO_DAYS)
    finally:
        db.dispose()
