"""Inventory rules: nights of a stay, what is available, how a hold's state may change.

Counts per room-night are ``capacity``, ``held`` (taken by a hold not yet confirmed) and
``booked`` (taken by a confirmed reservation); ``available = capacity - held - booked``.
A hold moves through ``held → confirmed | released | expired`` (and ``oversold``, see
``confirm``); each move says which counts change with it, so the rules live here, not in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

MAX_QUERY_NIGHTS = 90  # an availability query spans at most this many nights
MAX_HOLD_NIGHTS = 90  # a hold too (room allows 30; inventory only guards against nonsense)


class InvalidStay(ValueError):
    """Dates that don't describe a stay: end not after start, or too many nights."""


def nights(check_in: date, check_out: date, *, max_nights: int = MAX_HOLD_NIGHTS) -> list[date]:
    """Every night of a stay: ``check_in`` up to, not including, ``check_out``."""
    count = (check_out - check_in).days
    if count < 1:
        raise InvalidStay(f"the end date {check_out} must be after the start date {check_in}")
    if count > max_nights:
        raise InvalidStay(f"{count} nights requested; at most {max_nights} allowed")
    return [check_in + timedelta(days=i) for i in range(count)]


@dataclass(frozen=True)
class NightCounts:
    """The counts of one room on one night."""

    night: date
    capacity: int
    held: int
    booked: int

    @property
    def available(self) -> int:
        return max(0, self.capacity - self.held - self.booked)


class HoldStatus(StrEnum):
    HELD = "held"  # counted in ``held`` until confirmed, released or expired
    CONFIRMED = "confirmed"  # counted in ``booked``
    RELEASED = "released"  # counts nothing: compensation by room, or the reservation was cancelled
    EXPIRED = "expired"  # counts nothing: the TTL passed before a confirmation
    # The reservation exists in room but its nights could not be booked (its hold had expired
    # and the room filled up meanwhile): counts nothing, and an operator must look at it.
    OVERSOLD = "oversold"


class Effect(StrEnum):
    """What a transition does to the counts of every night of the hold."""

    NOTHING = "nothing"
    RELEASE_HELD = "release_held"  # held -= 1
    HELD_TO_BOOKED = "held_to_booked"  # held -= 1, booked += 1
    RELEASE_BOOKED = "release_booked"  # booked -= 1
    TAKE_BOOKED = "take_booked"  # booked += 1 if a unit is free on every night (else OVERSOLD)


@dataclass(frozen=True)
class Transition:
    """The next status (``None``: unchanged) and the effect on the counts."""

    status: HoldStatus | None
    effect: Effect = Effect.NOTHING

    @property
    def changes(self) -> bool:
        return self.status is not None


UNCHANGED = Transition(None)
REACQUIRABLE = frozenset({HoldStatus.RELEASED, HoldStatus.EXPIRED})


def confirm(current: HoldStatus | None) -> Transition:
    """``ReservationCreated``: the reservation is stored, so its nights become booked.

    A live hold moves from held to booked. If the hold expired (or inventory never saw one),
    the nights are booked afresh when free; when they aren't, the hold becomes ``OVERSOLD``.
    A released hold stays released: room released it (compensation) or the cancellation
    was already applied, so booking now would leak a unit forever.
    """
    if current is HoldStatus.HELD:
        return Transition(HoldStatus.CONFIRMED, Effect.HELD_TO_BOOKED)
    if current is None or current is HoldStatus.EXPIRED:
        return Transition(HoldStatus.CONFIRMED, Effect.TAKE_BOOKED)
    return UNCHANGED  # confirmed (a duplicate), released, oversold


def cancel(current: HoldStatus | None) -> Transition:
    """``ReservationCancelled``: whatever the hold counted is freed; it ends ``RELEASED``."""
    if current is HoldStatus.HELD:
        return Transition(HoldStatus.RELEASED, Effect.RELEASE_HELD)
    if current is HoldStatus.CONFIRMED:
        return Transition(HoldStatus.RELEASED, Effect.RELEASE_BOOKED)
    if current is HoldStatus.RELEASED:
        return UNCHANGED
    # expired, oversold, or unseen (a tombstone, so a late ReservationCreated can't book it).
    return Transition(HoldStatus.RELEASED)


def release(current: HoldStatus | None) -> Transition:
    """``DELETE /internal/holds/{id}`` (room's compensation): frees an unconfirmed hold only.

    A confirmed hold belongs to a stored reservation; it is freed by ``ReservationCancelled``.
    """
    if current is HoldStatus.HELD:
        return Transition(HoldStatus.RELEASED, Effect.RELEASE_HELD)
    return UNCHANGED


def expire(current: HoldStatus | None, *, expires_at: datetime, now: datetime) -> Transition:
    """The reaper: an unconfirmed hold whose TTL has passed frees its nights."""
    if current is HoldStatus.HELD and expires_at <= now:
        return Transition(HoldStatus.EXPIRED, Effect.RELEASE_HELD)
    return UNCHANGED


@dataclass(frozen=True)
class Stay:
    """What a hold is for: one room, a range of nights."""

    room_id: str
    check_in: date
    check_out: date

    @property
    def nights(self) -> list[date]:
        return nights(self.check_in, self.check_out)


class HoldRequest(StrEnum):
    """How ``POST /internal/holds`` treats a reservation id, given the hold already under it."""

    NEW = "new"  # no hold yet: take one
    REPLAY = "replay"  # the same request again (a retry): answer with the existing hold
    REACQUIRE = "reacquire"  # the old hold was released or expired: take the nights again
    MISMATCH = "mismatch"  # the id is already used for another room or other dates


def classify_hold_request(requested: Stay, existing: Stay | None, status: HoldStatus | None) -> HoldRequest:
    """Idempotency by reservation id: one id, one stay, at most one live hold."""
    if existing is None or status is None:
        return HoldRequest.NEW
    if existing != requested:
        return HoldRequest.MISMATCH
    if status in REACQUIRABLE:
        return HoldRequest.REACQUIRE
    return HoldRequest.REPLAY
