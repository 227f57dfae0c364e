"""Event handlers: profiles from auth's sign-ups, history from reservations and licenses.

Each handler runs inside the consumer's transaction, together with the processed-events
insert, so a redelivered event is skipped; the handlers are idempotent on top of that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from common.clock import Clock
from common.messaging import Envelope, Handler
from member_service.domain import history
from member_service.service_layer.members import record_history, register_member


def profile_handlers(clock: Clock) -> Mapping[str, Handler]:
    """``UserRegistered`` → a new active member (a second event for the same user is ignored)."""

    def user_registered(session: Session, envelope: Envelope, event: dict[str, Any]) -> None:
        register_member(session, event["user_id"], event["email"], event["display_name"], clock())

    return {"UserRegistered": user_registered}


def history_handlers() -> Mapping[str, Handler]:
    """Reservation and license events → one history entry each, even before the profile exists."""

    def recording(to_entry: Callable[[str, Mapping[str, Any]], history.HistoryEntry]) -> Handler:
        def handle(session: Session, envelope: Envelope, event: dict[str, Any]) -> None:
            record_history(session, to_entry(envelope.event_id, event))

        return handle

    return {
        "ReservationCreated": recording(history.from_reservation_created),
        "ReservationCancelled": recording(history.from_reservation_cancelled),
        "LicenseActivated": recording(history.from_license_activated),
    }
