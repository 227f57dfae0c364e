"""Composition root of the inventory service: the runtime, its collaborators and the app."""

from fastapi import FastAPI

from common.runtime import ServiceRuntime
from inventory_service.adapters.orm import messaging
from inventory_service.settings import InventorySettings


def build_app(settings: InventorySettings) -> FastAPI:
    """Wire the inventory service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging)
    return runtime.create_app(
        title="Inventory service", description="Availability per room per night and holds: no overbooking."
    )
