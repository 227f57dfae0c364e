"""The hold reaper: a background thread that expires unconfirmed holds past their TTL."""

from __future__ import annotations

import logging

from common.workers import BackgroundThread
from inventory_service.service_layer.inventory import InventoryService

log = logging.getLogger(__name__)


class HoldReaper(BackgroundThread):
    """Every ``interval_s``, release holds nobody confirmed in time (``held -= 1`` per night)."""

    def __init__(self, inventory: InventoryService, *, interval_s: float, batch_size: int = 100) -> None:
        super().__init__("hold-reaper")
        self._inventory = inventory
        self._interval_s = interval_s
        self._batch_size = batch_size
        self.last_error: str | None = None

    # start(), stop() and running: BackgroundThread.

    @property
    def healthy(self) -> bool:
        return self.running and self.last_error is None

    def status(self) -> dict[str, object]:
        """For /health/ready."""
        return {"healthy": self.healthy, "error": self.last_error}

    def run_once(self) -> int:
        """Expire every due hold (in batches); returns how many were expired."""
        total = 0
        while not self._stop.is_set():
            expired = self._inventory.expire_due_holds(self._batch_size)
            total += expired
            if expired < self._batch_size:
                break
        return total

    def _run(self) -> None:
        while True:
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:  # the DB may be locked or down: try again next round
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("hold reaper failed; retrying in %.1f s: %s", self._interval_s, self.last_error)
            if self._stop.wait(self._interval_s):
                return
