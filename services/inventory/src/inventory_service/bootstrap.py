"""Composition root of the inventory service: the runtime, its collaborators and the app."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from common.clock import Clock, utc_now
from common.messaging import topic_for
from common.runtime import ServiceRuntime
from inventory_service.adapters.orm import messaging
from inventory_service.api import availability, holds
from inventory_service.consumers import reservation_handlers
from inventory_service.reaper import HoldReaper
from inventory_service.service_layer.inventory import InventoryService
from inventory_service.settings import InventorySettings


def build_app(settings: InventorySettings, *, clock: Clock = utc_now) -> FastAPI:
    """Wire the inventory service from its settings (``clock`` is injectable for tests)."""
    runtime = ServiceRuntime(settings, tables=messaging)
    inventory = InventoryService(runtime.db, hold_ttl=timedelta(seconds=settings.hold_ttl_s), clock=clock)
    reaper = HoldReaper(
        inventory, interval_s=settings.reaper_interval_s, batch_size=settings.reaper_batch_size
    )
    runtime.add_worker("reaper", reaper)
    runtime.add_consumer("reservations", [topic_for("ReservationCreated")], reservation_handlers(inventory))
    return runtime.create_app(
        title="Inventory service",
        description="Availability per room per night and holds: no overbooking.",
        routers=[availability.router, holds.router],
        inventory=inventory,
    )
