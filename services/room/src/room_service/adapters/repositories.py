"""Repositories: domain objects in and out of the tables, inside the caller's unit of work."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.pagination import Page, PageRequest, keyset, page_of
from room_service.adapters.orm import ReservationRow, RoomRow
from room_service.domain.model import Reservation, ReservationStatus, Room


class RoomRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def all(self) -> list[Room]:
        rows = self.session.scalars(select(RoomRow).order_by(RoomRow.room_id))
        return [_room(row) for row in rows]

    def get(self, room_id: str) -> Room | None:
        row = self.session.get(RoomRow, room_id)
        return None if row is None else _room(row)

    def add_missing(self, rooms: Iterable[Room]) -> list[str]:
        """Insert the rooms not there yet (existing ones are left as they are); return their ids."""
        added = []
        for room in rooms:
            if self.session.get(RoomRow, room.room_id) is None:
                self.session.add(
                    RoomRow(
                        room_id=room.room_id,
                        name=room.name,
                        description=room.description,
                        capacity=room.capacity,
                        nightly_rate=room.nightly_rate,
                    )
                )
                added.append(room.room_id)
        return added


class ReservationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, reservation: Reservation) -> None:
        self.session.add(
            ReservationRow(
                reservation_id=reservation.reservation_id,
                member_id=reservation.member_id,
                room_id=reservation.room_id,
                check_in=reservation.check_in,
                check_out=reservation.check_out,
                status=reservation.status.value,
                created_at=reservation.created_at,
                cancelled_at=reservation.cancelled_at,
            )
        )

    def of_member(
        self, member_id: str, reservation_id: str, *, for_update: bool = False
    ) -> Reservation | None:
        """The member's own reservation; someone else's is as good as absent.

        ``for_update`` locks the row until commit (PostgreSQL; SQLite's write transaction
        already excludes other writers), so two concurrent cancels can't both see "confirmed".
        """
        row = self.session.get(ReservationRow, reservation_id, with_for_update=for_update)
        return None if row is None or row.member_id != member_id else _reservation(row)

    def page_of_member(self, member_id: str, page: PageRequest) -> Page[Reservation]:
        """One page of the member's reservations, newest first."""
        statement = select(ReservationRow).where(ReservationRow.member_id == member_id)
        rows = self.session.scalars(
            keyset(statement, ReservationRow.created_at, ReservationRow.reservation_id, page)
        ).all()
        return page_of([_reservation(row) for row in rows], page, lambda r: (r.created_at, r.reservation_id))

    def save_status(self, reservation: Reservation) -> None:
        """Write a status change (cancellation) back."""
        row = self.session.get(ReservationRow, reservation.reservation_id)
        if row is None:
            raise LookupError(reservation.reservation_id)
        row.status = reservation.status.value
        row.cancelled_at = reservation.cancelled_at


def _room(row: RoomRow) -> Room:
    return Room(row.room_id, row.name, row.description, row.capacity, row.nightly_rate)


def _reservation(row: ReservationRow) -> Reservation:
    return Reservation(
        reservation_id=row.reservation_id,
        member_id=row.member_id,
        room_id=row.room_id,
        check_in=row.check_in,
        check_out=row.check_out,
        status=ReservationStatus(row.status),
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
    )
