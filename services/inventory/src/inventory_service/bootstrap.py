"""Composition root of the inventory service: the runtime, its collaborators and the app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from common.health import ReadinessCheck, info_check
from common.messaging import topic_for
from common.runtime import ServiceRuntime
from inventory_service.adapters.orm import messaging
from inventory_service.api import availability, holds
from inventory_service.consumers import reservation_handlers
from inventory_service.reaper import HoldReaper
from inventory_service.service_layer.clock import Clock, utc_now
from inventory_service.service_layer.inventory import InventoryService
from inventory_service.settings import InventorySettings


class InventoryRuntime(ServiceRuntime):
    """The platform's runtime plus the hold reaper, started and stopped with the app.

    (The platform runtime has no hook for a service's own background workers yet; this
    subclass adds one, around the runtime's own lifespan.)
    """

    def __init__(self, settings: InventorySettings) -> None:
        super().__init__(settings, tables=messaging)
        self.reaper: HoldReaper | None = None

    def readiness_checks(self) -> list[ReadinessCheck]:
        checks = super().readiness_checks()
        if self.reaper is not None:
            reaper = self.reaper
            checks.append(
                info_check("reaper", lambda: {"healthy": reaper.healthy, "error": reaper.last_error})
            )
        return checks

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        async with super().lifespan(app):
            if self.reaper is not None:
                self.reaper.start()
            try:
                yield
            finally:
                if self.reaper is not None:
                    await asyncio.to_thread(self.reaper.stop)


def build_app(settings: InventorySettings, *, clock: Clock = utc_now) -> FastAPI:
    """Wire the inventory service from its settings (``clock`` is injectable for tests)."""
    runtime = InventoryRuntime(settings)
    inventory = InventoryService(runtime.db, hold_ttl=timedelta(seconds=settings.hold_ttl_s), clock=clock)
    runtime.reaper = HoldReaper(
        inventory, interval_s=settings.reaper_interval_s, batch_size=settings.reaper_batch_size
    )
    runtime.add_consumer("reservations", [topic_for("ReservationCreated")], reservation_handlers(inventory))
    return runtime.create_app(
        title="Inventory service",
        description="Availability per room per night and holds: no overbooking.",
        routers=[availability.router, holds.router],
        inventory=inventory,
    )
