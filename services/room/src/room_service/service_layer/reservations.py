"""Reservations: the hybrid pattern — ask synchronously what the user must know now, announce
the consequences asynchronously.

``create`` step by step:

1. **Idempotency.** A known key replays the answer stored with it (another body: 422).
2. **Rules.** Dates (422) and the room (404), before anyone else is bothered.
3. **Synchronous checks** (the user needs the answer now): is the member active (403; no
   profile yet: 409 + Retry-After), and can inventory hold the nights (409)?
4. **One transaction**: the reservation, its ``ReservationCreated`` outbox row and the answer
   for the idempotency key commit together — or not at all.
5. **If that fails**: a twin request with the same key may have committed first (same
   reservation id, same hold): replay its answer. Otherwise release the hold (compensation).

Compensation also follows a hold whose outcome is unknown: the call timed out, the connection
broke after sending, inventory answered a 5xx that is not a problem (``OutcomeUnknown``).
Inventory may have taken the hold anyway; our caller gets a 503/504 and no reservation exists,
so that hold would block the nights until the reaper expires it. The release is idempotent
(``DELETE /internal/holds/{id}``, unknown ids too). When it fails it is retried in the
background, a bounded number of times with backoff, and never for a reservation that exists
(a twin request with the same key booked it: the hold is its own). The reaper stays the last
backstop.

Confirming the hold, the member's history and the mail follow from the event, asynchronously.
Database work runs in worker threads (``asyncio.to_thread``): the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from common.clock import Clock, utc_now
from common.context import deadline_var
from common.db import Database
from common.errors import ProblemError
from common.http import OutcomeUnknown
from common.idempotency import IdempotencyKeyReused, IdempotencyStore, StoredResponse, request_fingerprint
from common.messaging import Outbox
from common.pagination import Page, PageRequest
from room_service.adapters.clients import HoldRefused, InventoryHolds, MemberDirectory
from room_service.adapters.repositories import ReservationRepository, RoomRepository
from room_service.domain import events
from room_service.domain.errors import (
    MemberNotActive,
    MemberNotYetKnown,
    NoAvailability,
    ReservationNotFound,
    RoomNotFound,
)
from room_service.domain.model import Reservation, Room, Stay, reservation_id_for

log = logging.getLogger(__name__)

# The idempotency scope of a key: keys are unique per member and operation, never globally.
CREATE_OPERATION = "POST /api/v1/reservations"

# Renders a reservation as the API answers it; that exact body is stored for replays.
Presenter = Callable[[Reservation], dict[str, Any]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Answer:
    """What ``create`` answers: the response, and whether it is a replay of a stored one."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class StorageUnavailable(ProblemError):
    """The reservation could not be stored (nothing was booked): retry with the same key."""

    status, title, slug = 503, "Service Unavailable", "storage-unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The reservation could not be stored and nothing was booked; "
            "retry with the same Idempotency-Key.",
            headers={"Retry-After": "1"},
        )


class Reservations:
    """The reservation use cases of one service instance (wired in ``bootstrap.py``)."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        idempotency: IdempotencyStore,
        members: MemberDirectory,
        inventory: InventoryHolds,
        present: Presenter,
        *,
        member_retry_after_s: float,
        clock: Clock = utc_now,
        release_attempts: int = 5,
        release_backoff_s: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._idempotency = idempotency
        self._members = members
        self._inventory = inventory
        self._present = present
        self._member_retry_after_s = member_retry_after_s
        self._clock = clock
        self._release_attempts = release_attempts
        self._release_backoff_s = release_backoff_s
        self._sleep = sleep
        # Compensations still retrying in the background (referenced, so none is collected).
        self._compensations: set[asyncio.Task[None]] = set()

    # -- create: the hybrid pattern ------------------------------------------------------------

    async def create(
        self, member_id: str, idempotency_key: str, room_id: str, check_in: date, check_out: date
    ) -> Answer:
        """Reserve ``room_id`` for the stay, at most once per idempotency key."""
        scope = f"{member_id}:{CREATE_OPERATION}"
        fingerprint = request_fingerprint(
            {"room_id": room_id, "check_in": check_in.isoformat(), "check_out": check_out.isoformat()}
        )
        # 1. Before the rules: a replay must still work once its check-in date has passed.
        stored = await asyncio.to_thread(self._stored_answer, scope, idempotency_key, fingerprint)
        if stored is not None:
            return Answer(stored.status_code, stored.body, replayed=True)

        # 2. The rules, before anyone else is bothered.
        now = self._clock()
        stay = Stay.requested(check_in, check_out, today=now.date())
        room = await asyncio.to_thread(self._require_room, room_id)
        reservation = Reservation.confirm(
            reservation_id_for(member_id, idempotency_key), member_id, room_id, stay, now=now
        )

        # 3. Member first: a hold is only worth taking for someone allowed to book.
        await self._require_active_member(member_id)
        try:
            await self._hold_nights(reservation)
        except OutcomeUnknown:
            log.warning(
                "hold for reservation %s: outcome unknown, releasing it in case it was taken",
                reservation.reservation_id,
                extra={"reservation_id": reservation.reservation_id},
            )
            self._compensate(reservation)
            raise

        # 4. The reservation, its event and the answer for the key: all or nothing.
        response = StoredResponse(201, self._present(reservation))
        try:
            await asyncio.to_thread(
                self._store, reservation, room, scope, idempotency_key, fingerprint, response
            )
        except Exception as exc:
            # 5. A twin request won the race (replay its answer), or the store really failed.
            twin = await self._twin_answer(exc, scope, idempotency_key, fingerprint)
            if twin is not None:
                return twin
            log.error(
                "storing reservation %s failed, releasing its hold: %s",
                reservation.reservation_id,
                getattr(exc, "orig", None) or type(exc).__name__,  # the driver's error, not the SQL
            )
            if not await self._inventory.release(reservation.reservation_id):
                self._compensate(reservation, tried_once=True)
            if isinstance(exc, SQLAlchemyError):
                raise StorageUnavailable() from exc
            raise
        log.info(
            "reservation %s created",
            reservation.reservation_id,
            extra={"reservation_id": reservation.reservation_id, "room_id": room_id},
        )
        return Answer(response.status_code, response.body)

    # -- compensation ----------------------------------------------------------------------------

    def _compensate(self, reservation: Reservation, *, tried_once: bool = False) -> None:
        """Release the reservation's hold in the background, retrying (see the module docstring)."""
        task = asyncio.create_task(self._release_unless_booked(reservation, tried_once))
        self._compensations.add(task)
        task.add_done_callback(self._compensations.discard)

    async def _release_unless_booked(self, reservation: Reservation, tried_once: bool) -> None:
        # The task inherited the request's context: its deadline is the request's, likely spent.
        # Background work has none (each release call brings its own budget).
        deadline_var.set(None)
        reservation_id = reservation.reservation_id
        for attempt in range(1 if tried_once else 0, self._release_attempts):
            if attempt:  # exponential backoff between attempts
                await self._sleep(self._release_backoff_s * 2 ** (attempt - 1))
            try:
                booked = await asyncio.to_thread(self._is_booked, reservation)
            except SQLAlchemyError as exc:
                log.warning("compensation of hold %s: can't read reservations yet (%s)", reservation_id, exc)
                continue
            if booked:
                log.info("hold %s belongs to a stored reservation: not released", reservation_id)
                return
            if await self._inventory.release(reservation_id):
                return
        log.error(
            "gave up releasing hold %s after %d attempts; the reaper expires it",
            reservation_id,
            self._release_attempts,
            extra={"reservation_id": reservation_id},
        )

    def _is_booked(self, reservation: Reservation) -> bool:
        with self._db.read() as session:
            repository = ReservationRepository(session)
            return repository.of_member(reservation.member_id, reservation.reservation_id) is not None

    async def compensations_settled(self) -> None:
        """Wait for the background releases in flight (tests; a clean shutdown)."""
        while self._compensations:
            await asyncio.gather(*self._compensations, return_exceptions=True)

    def _stored_answer(self, scope: str, key: str, fingerprint: str) -> StoredResponse | None:
        with self._db.read() as session:
            return self._idempotency.lookup(session, scope, key, fingerprint)

    def _require_room(self, room_id: str) -> Room:
        with self._db.read() as session:
            room = RoomRepository(session).get(room_id)
        if room is None:
            raise RoomNotFound(room_id)
        return room

    async def _require_active_member(self, member_id: str) -> None:
        standing = await self._members.standing(member_id)
        if standing is None:
            # Sign-up is event-driven: the profile usually appears within a second or two.
            raise MemberNotYetKnown(self._member_retry_after_s)
        if not standing.active:
            raise MemberNotActive(standing.status)

    async def _hold_nights(self, reservation: Reservation) -> None:
        hold = await self._inventory.hold(reservation)
        if hold is HoldRefused.NO_AVAILABILITY:
            raise NoAvailability(reservation.room_id)
        if hold is HoldRefused.OTHER_STAY or not hold.covers(reservation):
            # Inventory already holds this reservation id for another stay: the same key is in
            # flight with another body. That hold is the other request's: leave it alone.
            raise IdempotencyKeyReused()

    def _store(
        self,
        reservation: Reservation,
        room: Room,
        scope: str,
        key: str,
        fingerprint: str,
        response: StoredResponse,
    ) -> None:
        with self._db.transaction() as session:
            # The answer first: if a twin request committed it already, this fails right away.
            self._idempotency.save(session, scope, key, fingerprint, response)
            ReservationRepository(session).add(reservation)
            self._outbox.add(
                session,
                events.RESERVATION_CREATED,
                key=reservation.reservation_id,
                payload=events.reservation_created(reservation, room),
            )

    async def _twin_answer(self, exc: Exception, scope: str, key: str, fingerprint: str) -> Answer | None:
        """The answer a twin request stored, if ``exc`` is it beating us to the commit.

        Two copies of one request both missed the lookup and both got the (same) hold; the
        (scope, key) primary key let one commit. The hold is the winner's: no compensation.
        Raises ``IdempotencyKeyReused`` when the winner had another body.
        """
        if not isinstance(exc, IntegrityError):
            return None
        stored = await asyncio.to_thread(self._stored_answer, scope, key, fingerprint)
        if stored is None:
            return None  # some other constraint: a real failure
        log.info("idempotency key raced a twin request; replaying its answer")
        return Answer(stored.status_code, stored.body, replayed=True)

    # -- read and cancel (database only: plain functions, run in FastAPI's thread pool) ----------

    def list_mine(self, member_id: str, page: PageRequest) -> Page[Reservation]:
        """One page of the member's reservations, newest first."""
        with self._db.read() as session:
            return ReservationRepository(session).page_of_member(member_id, page)

    def get_mine(self, member_id: str, reservation_id: str) -> Reservation:
        """The member's reservation; ``ReservationNotFound`` (404) for anyone else's too."""
        with self._db.read() as session:
            reservation = ReservationRepository(session).of_member(member_id, reservation_id)
        if reservation is None:
            raise ReservationNotFound(reservation_id)
        return reservation

    def cancel(self, member_id: str, reservation_id: str) -> Reservation:
        """Cancel the member's reservation and announce it; cancelling again changes nothing."""
        with self._db.transaction() as session:
            repository = ReservationRepository(session)
            reservation = repository.of_member(member_id, reservation_id, for_update=True)
            if reservation is None:
                raise ReservationNotFound(reservation_id)
            if reservation.cancel(now=self._clock()):
                repository.save_status(reservation)
                self._outbox.add(
                    session,
                    events.RESERVATION_CANCELLED,
                    key=reservation.reservation_id,
                    payload=events.reservation_cancelled(reservation),
                )
                log.info(
                    "reservation %s cancelled",
                    reservation_id,
                    extra={"reservation_id": reservation_id},
                )
        return reservation
