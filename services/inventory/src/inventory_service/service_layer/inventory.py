"""The inventory use cases: availability, holds, confirmation, cancellation, expiry, seeding.

Each use case is one unit of work. Those driven by events receive the consumer's session, so
their effect commits together with the consumer's dedup record (effectively once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.clock import Clock, utc_now
from common.db import Database
from common.errors import Conflict, NotFound, UnprocessableContent
from inventory_service.adapters.metrics import HOLDS_EXPIRED, OVERSOLD
from inventory_service.adapters.orm import Hold
from inventory_service.adapters.repository import Column, InventoryRepository
from inventory_service.domain import model
from inventory_service.domain.model import (
    MAX_QUERY_NIGHTS,
    Effect,
    HoldRequest,
    HoldStatus,
    InvalidStay,
    NightCounts,
    Stay,
)

log = logging.getLogger(__name__)


class StaleHold(RuntimeError):
    """The hold changed under us (a concurrent transaction won the race); retrying re-reads it."""


class _NightFull(Exception):
    def __init__(self, night: date) -> None:
        self.night = night


@dataclass(frozen=True)
class HoldView:
    reservation_id: str
    room_id: str
    check_in: date
    check_out: date
    status: HoldStatus
    expires_at: datetime

    @classmethod
    def of(cls, hold: Hold) -> HoldView:
        return cls(
            hold.reservation_id,
            hold.room_id,
            hold.check_in,
            hold.check_out,
            HoldStatus(hold.status),
            hold.expires_at,
        )


def _stay_of(hold: Hold) -> Stay:
    return Stay(hold.room_id, hold.check_in, hold.check_out)


def _status_of(hold: Hold | None) -> HoldStatus | None:
    return HoldStatus(hold.status) if hold is not None else None


class InventoryService:
    """The use cases, bound to the database, a clock and the hold TTL."""

    def __init__(self, db: Database, *, hold_ttl: timedelta, clock: Clock = utc_now) -> None:
        self.db = db
        self.hold_ttl = hold_ttl
        self.clock = clock

    # -- queries -----------------------------------------------------------------------------

    def availability(self, room_id: str, start: date, end: date) -> list[NightCounts]:
        """Counts for every night in ``[start, end)``; a night inventory has no row for has none free."""
        nights = _valid_nights(start, end, MAX_QUERY_NIGHTS)
        with self.db.read() as session:
            repo = InventoryRepository(session)
            if not repo.room_known(room_id):
                raise NotFound(f"room {room_id!r} is unknown to inventory")
            counts = repo.counts(room_id, start, end)
        return [counts.get(night, NightCounts(night, 0, 0, 0)) for night in nights]

    # -- holds (room's synchronous calls) --------------------------------------------------------

    def place_hold(self, reservation_id: str, stay: Stay) -> tuple[HoldView, bool]:
        """Hold one unit of the room on every night of the stay, or nothing at all.

        Returns the hold and whether it was taken now (False: a replay of an earlier request).
        Never for a caller that gave up: the unit of work waits for the write lock no longer
        than room's budget and re-checks that budget right before it commits; spent, it raises
        ``DeadlineExceeded`` (504) and nothing is held (``common.db``).
        """
        _valid_nights(stay.check_in, stay.check_out, model.MAX_HOLD_NIGHTS)
        try:
            return self._place_hold(reservation_id, stay)
        except IntegrityError:
            # A concurrent request with the same id inserted its hold first (PostgreSQL; SQLite
            # serializes writers). Everything of ours rolled back; now it is a plain replay.
            log.info("hold %s was taken concurrently; answering with it", reservation_id)
            return self._place_hold(reservation_id, stay)

    def _place_hold(self, reservation_id: str, stay: Stay) -> tuple[HoldView, bool]:
        with self.db.transaction() as session:
            repo = InventoryRepository(session)
            hold = repo.get_hold(reservation_id)
            status = _status_of(hold)
            kind = model.classify_hold_request(stay, _stay_of(hold) if hold else None, status)
            if kind is HoldRequest.MISMATCH:
                raise UnprocessableContent(
                    f"reservation {reservation_id} already has a hold for another room or other dates"
                )
            if kind is HoldRequest.REPLAY:
                assert hold is not None
                return HoldView.of(hold), False
            if not repo.room_known(stay.room_id):
                raise NotFound(f"room {stay.room_id!r} is unknown to inventory")
            full = _take_every_night(session, repo, stay, "held")
            if full is not None:  # raising rolls the whole transaction back: nothing is held
                raise Conflict(f"no availability for room {stay.room_id} on {full.isoformat()}")
            now = self.clock()
            expires_at = now + self.hold_ttl
            if kind is HoldRequest.NEW:
                hold = repo.add_hold(stay, reservation_id, HoldStatus.HELD, expires_at, now)
            else:  # REACQUIRE: the old hold counted nothing any more
                assert status is not None
                if not repo.change_status(
                    reservation_id, status, HoldStatus.HELD, now, expires_at=expires_at
                ):
                    raise Conflict("the hold changed concurrently; try again", retry_after=1)
                hold = repo.get_hold(reservation_id)
                assert hold is not None
            return HoldView.of(hold), True

    def release_hold(self, reservation_id: str) -> None:
        """Room's compensation: free an unconfirmed hold. Anything else (or no hold) is left as is."""
        with self.db.transaction() as session:
            repo = InventoryRepository(session)
            hold = repo.get_hold(reservation_id)
            transition = model.release(_status_of(hold))
            if hold is None or not transition.changes:
                return
            self._apply(repo, hold, transition, required=False)

    def expire_due_holds(self, limit: int = 100) -> int:
        """Expire up to ``limit`` unconfirmed holds past their TTL; returns how many were expired."""
        now = self.clock()
        with self.db.read() as session:
            due = InventoryRepository(session).due_holds(now, limit)
        expired = 0
        for reservation_id in due:  # one short transaction each: no long write lock
            with self.db.transaction() as session:
                repo = InventoryRepository(session)
                hold = repo.get_hold(reservation_id)
                if hold is None:
                    continue
                transition = model.expire(_status_of(hold), expires_at=hold.expires_at, now=now)
                if transition.changes and self._apply(repo, hold, transition, required=False):
                    expired += 1
        if expired:
            HOLDS_EXPIRED.inc(expired)
            log.info("expired %d unconfirmed hold(s)", expired)
        return expired

    # -- events (the consumer's session) -----------------------------------------------------------

    def confirm(self, session: Session, reservation_id: str, stay: Stay) -> None:
        """``ReservationCreated``: book the reservation's nights (see ``model.confirm``)."""
        repo = InventoryRepository(session)
        hold = repo.get_hold(reservation_id)
        status = _status_of(hold)
        transition = model.confirm(status)
        if not transition.changes:
            if status is not HoldStatus.CONFIRMED:
                log.warning("ReservationCreated %s ignored: its hold is %s", reservation_id, status)
            return
        if hold is not None and _stay_of(hold) != stay:
            log.warning(
                "ReservationCreated %s differs from its hold; booking the held nights", reservation_id
            )
        if transition.effect is Effect.HELD_TO_BOOKED:
            assert hold is not None
            self._apply(repo, hold, transition, required=True)
            return
        # TAKE_BOOKED: the hold expired (or never reached us) yet the reservation exists.
        target = _stay_of(hold) if hold is not None else stay
        full = _take_every_night(session, repo, target, "booked")
        now = self.clock()
        new_status = HoldStatus.CONFIRMED if full is None else HoldStatus.OVERSOLD
        if full is not None:
            OVERSOLD.inc()
            why = f"no unit left on {full.isoformat()}" if repo.room_known(target.room_id) else "room unknown"
            log.error(
                "OVERSOLD: reservation %s exists in room but inventory can't book room %s (%s); "
                "recorded with status oversold",
                reservation_id, target.room_id, why,
            )  # fmt: skip
        if hold is None:
            repo.add_hold(target, reservation_id, new_status, now, now)
        elif status is not None and not repo.change_status(reservation_id, status, new_status, now):
            raise StaleHold(f"hold {reservation_id} changed while being confirmed")

    def cancel(self, session: Session, reservation_id: str, stay: Stay) -> None:
        """``ReservationCancelled``: free whatever the hold counts; it ends released."""
        repo = InventoryRepository(session)
        hold = repo.get_hold(reservation_id)
        transition = model.cancel(_status_of(hold))
        if not transition.changes:
            return
        if hold is None:
            # A tombstone: a ReservationCreated arriving late (a DLQ re-drive) must not book it.
            now = self.clock()
            repo.add_hold(stay, reservation_id, HoldStatus.RELEASED, now, now)
            return
        self._apply(repo, hold, transition, required=True)

    # -- shared ------------------------------------------------------------------------------------

    def _apply(
        self, repo: InventoryRepository, hold: Hold, transition: model.Transition, *, required: bool
    ) -> bool:
        """Move the hold to its new status, then change the counts the transition says.

        The status change is conditional; if another transaction moved the hold first, nothing
        is changed: ``required`` raises ``StaleHold`` (the consumer retries), else returns False.
        """
        current, new = HoldStatus(hold.status), transition.status
        assert new is not None
        stay = _stay_of(hold)
        if not repo.change_status(hold.reservation_id, current, new, self.clock()):
            if required:
                raise StaleHold(f"hold {hold.reservation_id} changed concurrently")
            return False
        nights = stay.nights
        effect = transition.effect
        if effect is Effect.NOTHING:
            return True
        if effect is Effect.HELD_TO_BOOKED:
            changed = repo.move_held_to_booked(stay.room_id, nights)
        elif effect is Effect.RELEASE_HELD:
            changed = repo.release_units(stay.room_id, nights, "held")
        elif effect is Effect.RELEASE_BOOKED:
            changed = repo.release_units(stay.room_id, nights, "booked")
        else:
            raise AssertionError(f"{effect} is not applied here")
        if changed != len(nights):
            # Counts and holds disagree: never expected; loud, but freeing what we can beats stopping.
            log.error(
                "hold %s (%s): %s changed %d of %d nights; counts are out of step",
                hold.reservation_id, new.value, effect.value, changed, len(nights),
            )  # fmt: skip
        return True

    # -- demo data ---------------------------------------------------------------------------------

    def add_missing_nights(self, rooms: Mapping[str, int], start: date, days: int) -> int:
        """Create ``[start, start + days)`` for each room at its capacity where absent; counts kept."""
        dates = [start + timedelta(days=i) for i in range(days)]
        added = 0
        with self.db.transaction() as session:
            repo = InventoryRepository(session)
            for room_id, capacity in rooms.items():
                missing = repo.missing_nights(room_id, dates)
                repo.add_nights(room_id, capacity, missing)
                added += len(missing)
        return added


def _valid_nights(start: date, end: date, max_nights: int) -> list[date]:
    try:
        return model.nights(start, end, max_nights=max_nights)
    except InvalidStay as exc:
        raise UnprocessableContent(str(exc)) from exc


def _take_every_night(session: Session, repo: InventoryRepository, stay: Stay, column: Column) -> date | None:
    """Take one unit on every night, in date order, or none: returns the first full night, if any.

    A savepoint undoes the nights already taken when a later one is full, so this is atomic
    even inside a larger transaction (the consumer's).
    """
    try:
        with session.begin_nested():
            for night in stay.nights:
                if not repo.take_unit(stay.room_id, night, column):
                    raise _NightFull(night)
    except _NightFull as full:
        return full.night
    return None
