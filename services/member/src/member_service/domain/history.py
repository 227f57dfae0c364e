"""Member history: what happened to a member elsewhere, learned from other services' events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

RESERVATION_CREATED = "reservation_created"
RESERVATION_CANCELLED = "reservation_cancelled"
LICENSE_ACTIVATED = "license_activated"


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a member's history; ``event_id`` makes it unique per member."""

    member_id: str
    event_id: str
    kind: str
    ref_id: str
    at: datetime
    details: dict[str, Any]


def _iso(value: date) -> str:
    return value.isoformat()


def from_reservation_created(event_id: str, event: Mapping[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        member_id=event["member_id"],
        event_id=event_id,
        kind=RESERVATION_CREATED,
        ref_id=event["reservation_id"],
        at=event["created_at"],
        details={
            "room_id": event["room_id"],
            "check_in": _iso(event["check_in"]),
            "check_out": _iso(event["check_out"]),
            "nights": event["nights"],
        },
    )


def from_reservation_cancelled(event_id: str, event: Mapping[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        member_id=event["member_id"],
        event_id=event_id,
        kind=RESERVATION_CANCELLED,
        ref_id=event["reservation_id"],
        at=event["cancelled_at"],
        details={
            "room_id": event["room_id"],
            "check_in": _iso(event["check_in"]),
            "check_out": _iso(event["check_out"]),
        },
    )


def from_license_activated(event_id: str, event: Mapping[str, Any]) -> HistoryEntry:
    # The activation is what happened; the license it belongs to goes in the details.
    return HistoryEntry(
        member_id=event["user_id"],
        event_id=event_id,
        kind=LICENSE_ACTIVATED,
        ref_id=event["activation_id"],
        at=event["activated_at"],
        details={
            "license_id": event["license_id"],
            "product": event["product"],
            "machine_id": event["machine_id"],
        },
    )
