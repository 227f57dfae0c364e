"""The use cases against a real SQLite database: holds, confirmation, cancellation, expiry, seed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.errors import Conflict, NotFound, UnprocessableContent
from inventory_service.adapters.orm import Availability, Hold
from inventory_service.domain.model import Stay
from inventory_service.seed import DEMO_DAYS, DEMO_ROOMS, seed
from inventory_service.service_layer.inventory import InventoryService
from inventory_service.settings import InventorySettings

from .conftest import FakeClock, day

FREE = (0, 0)
HELD = (1, 0)
BOOKED = (0, 1)


def status_of(db: Database, reservation_id: str) -> str | None:
    with db.read() as session:
        return session.scalar(select(Hold.status).where(Hold.reservation_id == reservation_id))


def test_a_hold_takes_one_unit_on_every_night_and_a_replay_takes_nothing_more(
    inventory: InventoryService, add_room, counts, room_id: str, clock: FakeClock
) -> None:
    add_room(room_id, capacity=2, days=5)
    stay = Stay(room_id, day(1), day(4))

    hold, created = inventory.place_hold("res-1", stay)
    assert created
    assert (hold.status, hold.room_id, hold.check_in, hold.check_out) == ("held", room_id, day(1), day(4))
    assert hold.expires_at == clock() + timedelta(minutes=5)
    assert counts(room_id, 5) == [FREE, HELD, HELD, HELD, FREE]

    again, created_again = inventory.place_hold("res-1", stay)
    assert not created_again
    assert again == hold
    assert counts(room_id, 5) == [FREE, HELD, HELD, HELD, FREE]


def test_one_full_night_means_nothing_is_held_anywhere(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str
) -> None:
    add_room(room_id, capacity=1, days=5)
    inventory.place_hold("res-a", Stay(room_id, day(2), day(3)))  # night 2 is now full

    with pytest.raises(Conflict, match=f"no availability for room {room_id} on {day(2).isoformat()}"):
        inventory.place_hold("res-b", Stay(room_id, day(0), day(5)))

    assert counts(room_id, 5) == [FREE, FREE, HELD, FREE, FREE]  # nights 0 and 1 were rolled back
    assert status_of(db, "res-b") is None  # and no hold row either


def test_a_night_inventory_does_not_have_is_not_available(
    inventory: InventoryService, add_room, room_id: str
) -> None:
    add_room(room_id, days=3)
    with pytest.raises(Conflict, match=day(3).isoformat()):
        inventory.place_hold("res-1", Stay(room_id, day(1), day(5)))


def test_unknown_room_bad_dates_and_a_reused_id_are_refused(
    inventory: InventoryService, add_room, room_id: str
) -> None:
    add_room(room_id)
    with pytest.raises(NotFound, match="unknown to inventory"):
        inventory.place_hold("res-1", Stay("nope", day(1), day(2)))
    with pytest.raises(UnprocessableContent, match="must be after"):
        inventory.place_hold("res-1", Stay(room_id, day(2), day(2)))
    inventory.place_hold("res-1", Stay(room_id, day(1), day(2)))
    with pytest.raises(UnprocessableContent, match="already has a hold for another room or other dates"):
        inventory.place_hold("res-1", Stay(room_id, day(1), day(3)))


def test_release_frees_a_held_hold_once_and_ignores_the_rest(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str
) -> None:
    add_room(room_id, days=3)
    inventory.place_hold("res-1", Stay(room_id, day(0), day(2)))
    inventory.release_hold("res-1")
    assert counts(room_id, 3) == [FREE, FREE, FREE]
    assert status_of(db, "res-1") == "released"
    inventory.release_hold("res-1")  # again
    inventory.release_hold("never-seen")
    assert counts(room_id, 3) == [FREE, FREE, FREE]

    # A confirmed hold belongs to a stored reservation: only ReservationCancelled frees it.
    inventory.place_hold("res-2", Stay(room_id, day(0), day(1)))
    with db.transaction() as session:
        inventory.confirm(session, "res-2", Stay(room_id, day(0), day(1)))
    inventory.release_hold("res-2")
    assert counts(room_id, 3) == [BOOKED, FREE, FREE]
    assert status_of(db, "res-2") == "confirmed"


def test_the_reaper_expires_only_unconfirmed_holds_past_their_ttl(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str, clock: FakeClock
) -> None:
    add_room(room_id, days=3)
    inventory.place_hold("res-held", Stay(room_id, day(0), day(2)))
    inventory.place_hold("res-confirmed", Stay(room_id, day(1), day(3)))
    with db.transaction() as session:
        inventory.confirm(session, "res-confirmed", Stay(room_id, day(1), day(3)))

    clock.advance(minutes=4, seconds=59)
    assert inventory.expire_due_holds() == 0
    assert counts(room_id, 3) == [HELD, (1, 1), BOOKED]

    clock.advance(seconds=1)
    assert inventory.expire_due_holds() == 1
    assert counts(room_id, 3) == [FREE, BOOKED, BOOKED]
    assert (status_of(db, "res-held"), status_of(db, "res-confirmed")) == ("expired", "confirmed")
    assert inventory.expire_due_holds() == 0


def test_a_released_or_expired_hold_can_be_taken_again_under_the_same_id(
    inventory: InventoryService, add_room, counts, room_id: str, clock: FakeClock
) -> None:
    add_room(room_id, capacity=1, days=2)
    stay = Stay(room_id, day(0), day(2))
    first, _ = inventory.place_hold("res-1", stay)
    clock.advance(minutes=6)
    inventory.expire_due_holds()
    assert counts(room_id, 2) == [FREE, FREE]

    again, created = inventory.place_hold("res-1", stay)
    assert created
    assert again.status == "held"
    assert again.expires_at == clock() + timedelta(minutes=5) > first.expires_at
    assert counts(room_id, 2) == [HELD, HELD]

    inventory.release_hold("res-1")
    _, created = inventory.place_hold("res-1", stay)
    assert created
    assert counts(room_id, 2) == [HELD, HELD]


def test_confirm_moves_held_to_booked_once(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str
) -> None:
    add_room(room_id, days=3)
    stay = Stay(room_id, day(0), day(2))
    inventory.place_hold("res-1", stay)
    for _ in range(2):  # the second is a redelivery under a new event id: state makes it a no-op
        with db.transaction() as session:
            inventory.confirm(session, "res-1", stay)
    assert counts(room_id, 3) == [BOOKED, BOOKED, FREE]
    assert status_of(db, "res-1") == "confirmed"
    again, created = inventory.place_hold("res-1", stay)  # room retrying its POST: same hold
    assert (again.status, created) == ("confirmed", False)


def test_confirm_after_expiry_books_again_when_a_unit_is_free(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str, clock: FakeClock
) -> None:
    add_room(room_id, capacity=1, days=2)
    stay = Stay(room_id, day(0), day(2))
    inventory.place_hold("res-1", stay)
    clock.advance(minutes=10)
    inventory.expire_due_holds()
    with db.transaction() as session:
        inventory.confirm(session, "res-1", stay)
    assert counts(room_id, 2) == [BOOKED, BOOKED]
    assert status_of(db, "res-1") == "confirmed"


def test_confirm_after_expiry_with_the_room_full_records_an_oversell_and_changes_no_count(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str, clock: FakeClock
) -> None:
    add_room(room_id, capacity=1, days=2)
    stay = Stay(room_id, day(0), day(2))
    inventory.place_hold("res-late", stay)
    clock.advance(minutes=10)
    inventory.expire_due_holds()
    inventory.place_hold("res-other", Stay(room_id, day(1), day(2)))  # takes night 1 meanwhile
    before = REGISTRY.get_sample_value("inventory_oversold_total") or 0.0

    with db.transaction() as session:
        inventory.confirm(session, "res-late", stay)

    assert status_of(db, "res-late") == "oversold"
    assert counts(room_id, 2) == [FREE, HELD]  # night 0 was taken and rolled back (savepoint)
    assert REGISTRY.get_sample_value("inventory_oversold_total") == before + 1
    with db.transaction() as session:  # cancelling it later frees nothing it never had
        inventory.cancel(session, "res-late", stay)
    assert status_of(db, "res-late") == "released"
    assert counts(room_id, 2) == [FREE, HELD]


def test_a_reservation_inventory_never_held_is_booked_when_free(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str
) -> None:
    add_room(room_id, days=2)
    with db.transaction() as session:
        inventory.confirm(session, "res-1", Stay(room_id, day(0), day(1)))
    assert counts(room_id, 2) == [BOOKED, FREE]
    assert status_of(db, "res-1") == "confirmed"


def test_cancel_frees_what_the_hold_counted(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str
) -> None:
    add_room(room_id, days=2)
    held, booked = Stay(room_id, day(0), day(1)), Stay(room_id, day(1), day(2))
    inventory.place_hold("res-held", held)
    inventory.place_hold("res-booked", booked)
    with db.transaction() as session:
        inventory.confirm(session, "res-booked", booked)
    assert counts(room_id, 2) == [HELD, BOOKED]

    for _ in range(2):  # the second: a redelivery, changes nothing
        with db.transaction() as session:
            inventory.cancel(session, "res-held", held)
            inventory.cancel(session, "res-booked", booked)
    assert counts(room_id, 2) == [FREE, FREE]
    assert (status_of(db, "res-held"), status_of(db, "res-booked")) == ("released", "released")


def test_a_cancellation_before_its_creation_leaves_a_tombstone_so_the_late_creation_books_nothing(
    db: Database, inventory: InventoryService, add_room, counts, room_id: str
) -> None:
    add_room(room_id, days=2)
    stay = Stay(room_id, day(0), day(2))
    with db.transaction() as session:
        inventory.cancel(session, "res-1", stay)
    with db.transaction() as session:  # e.g. ReservationCreated re-driven from the DLQ later
        inventory.confirm(session, "res-1", stay)
    assert counts(room_id, 2) == [FREE, FREE]
    assert status_of(db, "res-1") == "released"


def test_the_database_itself_refuses_an_overbooked_or_negative_night(
    db: Database, add_room, room_id: str
) -> None:
    add_room(room_id, capacity=1, days=1)
    night = Availability.room_id == room_id
    refused = r"CHECK constraint failed|violates check constraint"  # SQLite's words, PostgreSQL's
    for values in ({"held": 1, "booked": 1}, {"held": -1}, {"booked": 2}):
        with pytest.raises(IntegrityError, match=refused), db.transaction() as session:
            session.execute(update(Availability).where(night).values(**values))


def test_seed_is_idempotent_keeps_counts_and_only_adds_missing_nights(
    settings: InventorySettings, db: Database
) -> None:
    today = date(2031, 1, 10)
    seed(settings, today=today)
    inventory = InventoryService(db, hold_ttl=timedelta(minutes=5))
    inventory.place_hold("res-1", Stay("r105", today, today + timedelta(days=1)))

    seed(settings, today=today)  # again: nothing reset
    seed(settings, today=today + timedelta(days=5))  # days later: extends the window

    last = today + timedelta(days=DEMO_DAYS + 5)
    for room_id, capacity in DEMO_ROOMS.items():
        nights = inventory.availability(room_id, today, last)
        assert len(nights) == DEMO_DAYS + 5
        assert {n.capacity for n in nights} == {capacity}
    r105 = inventory.availability("r105", today, today + timedelta(days=2))
    assert [(n.held, n.available) for n in r105] == [(1, 0), (0, 1)]
    assert DEMO_ROOMS == {"r101": 2, "r102": 2, "r103": 2, "r104": 2, "r105": 1}
