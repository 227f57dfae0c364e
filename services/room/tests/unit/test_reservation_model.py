"""Reservations: deterministic ids, idempotent cancellation, events that fit their contracts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from common.messaging import AvroCodec
from room_service.api.schemas import ReservationOut, present_reservation
from room_service.domain import events
from room_service.domain.model import Reservation, ReservationStatus, Room, Stay, reservation_id_for

NOW = datetime(2030, 5, 10, 9, 30, 0, 250000, tzinfo=UTC)


def a_reservation() -> Reservation:
    stay = Stay(date(2030, 6, 1), date(2030, 6, 4))
    return Reservation.confirm(reservation_id_for("m-1", "k-1"), "m-1", "r101", stay, now=NOW)


def test_reservation_id_is_a_uuid_derived_from_member_and_key() -> None:
    rid = reservation_id_for("m-1", "k-1")
    assert str(uuid.UUID(rid)) == rid
    assert reservation_id_for("m-1", "k-1") == rid  # the twin of a request gets the same id
    assert reservation_id_for("m-2", "k-1") != rid  # keys are per member
    assert reservation_id_for("m-1", "k-2") != rid
    # The separator keeps ("m-1", "2k") and ("m-12", "k") apart.
    assert reservation_id_for("m-1", "2k") != reservation_id_for("m-12", "k")


def test_cancel_once_then_nothing_changes() -> None:
    reservation = a_reservation()
    assert reservation.status is ReservationStatus.CONFIRMED
    assert reservation.cancel(now=NOW + timedelta(hours=1)) is True
    assert reservation.status is ReservationStatus.CANCELLED
    assert reservation.cancelled_at == NOW + timedelta(hours=1)
    assert reservation.cancel(now=NOW + timedelta(hours=2)) is False
    assert reservation.cancelled_at == NOW + timedelta(hours=1)


def test_events_are_valid_against_the_avro_contracts() -> None:
    codec = AvroCodec.from_contracts()
    reservation = a_reservation()
    created = events.reservation_created(reservation, Room("r101", "Garden Single", "Quiet.", 1, 80))
    value, fingerprint, _ = codec.encode(events.RESERVATION_CREATED, created)
    event_type, version, decoded = codec.decode(value, fingerprint)
    assert (event_type, version) == ("ReservationCreated", 2)
    assert decoded["room_name"] == "Garden Single"
    assert decoded["room_id"] == "r101"
    assert decoded["nights"] == 3
    assert decoded["check_in"] == date(2030, 6, 1)

    reservation.cancel(now=NOW)
    cancelled = events.reservation_cancelled(reservation)
    value, fingerprint, _ = codec.encode(events.RESERVATION_CANCELLED, cancelled)
    assert codec.decode(value, fingerprint)[2]["reservation_id"] == reservation.reservation_id


def test_no_cancelled_event_for_a_reservation_that_is_not_cancelled() -> None:
    with pytest.raises(ValueError, match="not cancelled"):
        events.reservation_cancelled(a_reservation())


def test_presented_reservation_has_the_api_fields() -> None:
    body = present_reservation(a_reservation())
    assert body == {
        "reservation_id": reservation_id_for("m-1", "k-1"),
        "member_id": "m-1",
        "room_id": "r101",
        "check_in": "2030-06-01",
        "check_out": "2030-06-04",
        "nights": 3,
        "status": "confirmed",
        "created_at": "2030-05-10T09:30:00.250000Z",
        "cancelled_at": None,
    }
    assert ReservationOut.model_validate(body) == ReservationOut.of(a_reservation())
