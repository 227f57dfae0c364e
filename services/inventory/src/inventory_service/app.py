"""The inventory service's app factory."""

from fastapi import FastAPI

from inventory_service.bootstrap import build_app
from inventory_service.settings import InventorySettings


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    """Build the inventory app from settings (read from the environment when not given)."""
    return build_app(settings or InventorySettings())
