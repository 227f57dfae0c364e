"""Route dependencies: the use cases wired in the composition root."""

from typing import Annotated

from fastapi import Depends, Request

from inventory_service.service_layer.inventory import InventoryService


def _inventory(request: Request) -> InventoryService:
    service: InventoryService = request.app.state.inventory
    return service


Inventory = Annotated[InventoryService, Depends(_inventory)]
