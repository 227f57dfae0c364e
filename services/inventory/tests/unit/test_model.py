"""The inventory rules, without any I/O: nights, availability, hold transitions, idempotency."""

from datetime import UTC, date, datetime, timedelta

import pytest

from inventory_service.domain import model
from inventory_service.domain.model import (
    Effect,
    HoldRequest,
    HoldStatus,
    InvalidStay,
    NightCounts,
    Stay,
    Transition,
    classify_hold_request,
)

D = date(2030, 3, 30)


def test_nights_are_check_in_up_to_but_not_including_check_out() -> None:
    assert model.nights(D, D + timedelta(days=3)) == [D, date(2030, 3, 31), date(2030, 4, 1)]
    assert model.nights(D, D + timedelta(days=1)) == [D]


@pytest.mark.parametrize("days", [0, -1])
def test_a_stay_must_end_after_it_starts(days: int) -> None:
    with pytest.raises(InvalidStay, match="must be after"):
        model.nights(D, D + timedelta(days=days))


def test_a_stay_is_capped() -> None:
    assert len(model.nights(D, D + timedelta(days=90))) == 90
    with pytest.raises(InvalidStay, match="91 nights requested; at most 90"):
        model.nights(D, D + timedelta(days=91))
    with pytest.raises(InvalidStay, match="at most 5"):
        model.nights(D, D + timedelta(days=6), max_nights=5)


@pytest.mark.parametrize(
    ("capacity", "held", "booked", "available"),
    [(2, 0, 0, 2), (2, 1, 0, 1), (2, 0, 1, 1), (2, 1, 1, 0), (1, 0, 1, 0), (0, 0, 0, 0), (1, 1, 1, 0)],
)
def test_available_is_capacity_minus_held_minus_booked_never_negative(
    capacity: int, held: int, booked: int, available: int
) -> None:
    assert NightCounts(D, capacity, held, booked).available == available


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (HoldStatus.HELD, Transition(HoldStatus.CONFIRMED, Effect.HELD_TO_BOOKED)),
        (HoldStatus.EXPIRED, Transition(HoldStatus.CONFIRMED, Effect.TAKE_BOOKED)),
        (None, Transition(HoldStatus.CONFIRMED, Effect.TAKE_BOOKED)),
        (HoldStatus.CONFIRMED, model.UNCHANGED),
        (HoldStatus.RELEASED, model.UNCHANGED),
        (HoldStatus.OVERSOLD, model.UNCHANGED),
    ],
)
def test_confirm(current: HoldStatus | None, expected: Transition) -> None:
    assert model.confirm(current) == expected


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (HoldStatus.HELD, Transition(HoldStatus.RELEASED, Effect.RELEASE_HELD)),
        (HoldStatus.CONFIRMED, Transition(HoldStatus.RELEASED, Effect.RELEASE_BOOKED)),
        (HoldStatus.EXPIRED, Transition(HoldStatus.RELEASED, Effect.NOTHING)),
        (HoldStatus.OVERSOLD, Transition(HoldStatus.RELEASED, Effect.NOTHING)),
        (None, Transition(HoldStatus.RELEASED, Effect.NOTHING)),  # a tombstone
        (HoldStatus.RELEASED, model.UNCHANGED),
    ],
)
def test_cancel(current: HoldStatus | None, expected: Transition) -> None:
    assert model.cancel(current) == expected


@pytest.mark.parametrize("current", [None, *HoldStatus])
def test_release_frees_only_an_unconfirmed_hold(current: HoldStatus | None) -> None:
    expected = (
        Transition(HoldStatus.RELEASED, Effect.RELEASE_HELD)
        if current is HoldStatus.HELD
        else model.UNCHANGED
    )
    assert model.release(current) == expected


def test_expire_frees_a_held_hold_once_its_ttl_has_passed() -> None:
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    assert model.expire(HoldStatus.HELD, expires_at=now, now=now) == Transition(
        HoldStatus.EXPIRED, Effect.RELEASE_HELD
    )
    assert model.expire(HoldStatus.HELD, expires_at=now + timedelta(seconds=1), now=now) == model.UNCHANGED
    for status in set(HoldStatus) - {HoldStatus.HELD}:
        assert model.expire(status, expires_at=now - timedelta(hours=1), now=now) == model.UNCHANGED


def test_hold_requests_are_idempotent_by_reservation_id() -> None:
    stay = Stay("r101", D, D + timedelta(days=2))
    assert classify_hold_request(stay, None, None) is HoldRequest.NEW
    for live in (HoldStatus.HELD, HoldStatus.CONFIRMED, HoldStatus.OVERSOLD):
        assert classify_hold_request(stay, stay, live) is HoldRequest.REPLAY
    for dead in (HoldStatus.RELEASED, HoldStatus.EXPIRED):
        assert classify_hold_request(stay, stay, dead) is HoldRequest.REACQUIRE
    other_room = Stay("r102", stay.check_in, stay.check_out)
    other_dates = Stay("r101", stay.check_in, stay.check_out + timedelta(days=1))
    for existing in (other_room, other_dates):
        for status in HoldStatus:
            assert classify_hold_request(stay, existing, status) is HoldRequest.MISMATCH
