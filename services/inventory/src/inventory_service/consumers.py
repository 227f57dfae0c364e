"""Event handlers: room's reservation events confirm and release holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from common.messaging import Envelope, Handler, PermanentError
from inventory_service.domain.model import InvalidStay, Stay, nights
from inventory_service.service_layer.inventory import InventoryService


def _stay(payload: dict[str, Any]) -> Stay:
    stay = Stay(payload["room_id"], payload["check_in"], payload["check_out"])
    try:
        nights(stay.check_in, stay.check_out)
    except InvalidStay as exc:  # retrying can't fix the event's dates: straight to the DLQ
        raise PermanentError(f"reservation {payload['reservation_id']}: {exc}") from exc
    return stay


def reservation_handlers(inventory: InventoryService) -> dict[str, Handler]:
    """Handlers for topic ``room.reservations`` (both events are keyed by reservation id)."""

    def on_created(session: Session, _envelope: Envelope, payload: dict[str, Any]) -> None:
        inventory.confirm(session, payload["reservation_id"], _stay(payload))

    def on_cancelled(session: Session, _envelope: Envelope, payload: dict[str, Any]) -> None:
        inventory.cancel(session, payload["reservation_id"], _stay(payload))

    return {"ReservationCreated": on_created, "ReservationCancelled": on_cancelled}
