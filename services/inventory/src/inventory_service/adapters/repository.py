"""Reads and writes of availability and holds, in the caller's session (its unit of work).

Every change of a count is ONE conditional ``UPDATE`` whose ``WHERE`` states the rule
(``capacity - held - booked >= 1`` to take a unit, ``held >= 1`` to release one), and the
caller checks ``rowcount``. That is what keeps counts right under concurrency on any database:
on PostgreSQL two transactions racing for the last unit both run the UPDATE, the second waits
for the first's row lock, re-evaluates the WHERE and matches nothing. (On SQLite, write
transactions are serialized by ``BEGIN IMMEDIATE`` anyway.) Status changes are conditional too
(``WHERE status = <expected>``), so a confirmation and the reaper can't both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from inventory_service.adapters.orm import Availability, Hold
from inventory_service.domain.model import HoldStatus, NightCounts, Stay

Column = Literal["held", "booked"]

_NO_SYNC = {"synchronize_session": False}  # plain SQL UPDATEs: no ORM objects to keep in step


class InventoryRepository:
    """Availability and holds of one unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- availability ------------------------------------------------------------------------

    def room_known(self, room_id: str) -> bool:
        found = self.session.scalar(
            select(Availability.room_id).where(Availability.room_id == room_id).limit(1)
        )
        return found is not None

    def counts(self, room_id: str, start: date, end: date) -> dict[date, NightCounts]:
        """The nights of ``room_id`` in ``[start, end)`` that inventory has, by date."""
        rows = self.session.scalars(
            select(Availability)
            .where(Availability.room_id == room_id, Availability.night >= start, Availability.night < end)
            .order_by(Availability.night)
        )
        return {r.night: NightCounts(r.night, r.capacity, r.held, r.booked) for r in rows}

    def take_unit(self, room_id: str, night: date, column: Column) -> bool:
        """``column += 1`` on one night if a unit is free there; False (nothing changed) if not."""
        a = Availability
        target = a.held if column == "held" else a.booked
        result = self._execute(
            update(a)
            .where(a.room_id == room_id, a.night == night, a.capacity - a.held - a.booked >= 1)
            .values({target: target + 1})
        )
        return result.rowcount == 1

    def release_units(self, room_id: str, nights: Sequence[date], column: Column) -> int:
        """``column -= 1`` on each night that has one to give back; returns the nights changed."""
        a = Availability
        target = a.held if column == "held" else a.booked
        result = self._execute(
            update(a)
            .where(a.room_id == room_id, a.night.in_(nights), target >= 1)
            .values({target: target - 1})
        )
        return result.rowcount

    def move_held_to_booked(self, room_id: str, nights: Sequence[date]) -> int:
        """``held -= 1, booked += 1`` on each night (capacity use unchanged); returns nights changed."""
        a = Availability
        result = self._execute(
            update(a)
            .where(a.room_id == room_id, a.night.in_(nights), a.held >= 1)
            .values(held=a.held - 1, booked=a.booked + 1)
        )
        return result.rowcount

    def missing_nights(self, room_id: str, nights: Iterable[date]) -> list[date]:
        wanted = sorted(set(nights))
        if not wanted:
            return []
        have = set(
            self.session.scalars(
                select(Availability.night).where(
                    Availability.room_id == room_id,
                    Availability.night >= wanted[0],
                    Availability.night <= wanted[-1],
                )
            )
        )
        return [n for n in wanted if n not in have]

    def add_nights(self, room_id: str, capacity: int, nights: Iterable[date]) -> None:
        self.session.add_all(Availability(room_id=room_id, night=n, capacity=capacity) for n in nights)
        self.session.flush()

    # -- holds -------------------------------------------------------------------------------

    def get_hold(self, reservation_id: str) -> Hold | None:
        return self.session.get(Hold, reservation_id)

    def add_hold(
        self, stay: Stay, reservation_id: str, status: HoldStatus, expires_at: datetime, now: datetime
    ) -> Hold:
        hold = Hold(
            reservation_id=reservation_id,
            room_id=stay.room_id,
            check_in=stay.check_in,
            check_out=stay.check_out,
            status=status.value,
            expires_at=expires_at,
            created_at=now,
            updated_at=now,
        )
        self.session.add(hold)
        self.session.flush()  # a concurrent twin (same id) fails here, inside the transaction
        return hold

    def change_status(
        self, reservation_id: str, expected: HoldStatus, new: HoldStatus, now: datetime, **values: Any
    ) -> bool:
        """Move the hold from ``expected`` to ``new``; False if it wasn't in ``expected`` any more."""
        result = self._execute(
            update(Hold)
            .where(Hold.reservation_id == reservation_id, Hold.status == expected.value)
            .values(status=new.value, updated_at=now, **values)
        )
        if result.rowcount == 1:
            self.session.expire_all()  # loaded Hold objects must show the new row
        return result.rowcount == 1

    def due_holds(self, now: datetime, limit: int) -> list[str]:
        """Ids of unconfirmed holds whose expiry has passed, oldest first."""
        return list(
            self.session.scalars(
                select(Hold.reservation_id)
                .where(Hold.status == HoldStatus.HELD.value, Hold.expires_at <= now)
                .order_by(Hold.expires_at)
                .limit(limit)
            )
        )

    def _execute(self, statement: Any) -> CursorResult[Any]:
        result = self.session.execute(statement, execution_options=_NO_SYNC)
        assert isinstance(result, CursorResult)
        return result
