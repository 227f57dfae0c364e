"""The booking rules on dates: order, not in the past, at most 30 nights."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from room_service.domain.errors import InvalidStay
from room_service.domain.model import MAX_NIGHTS, Stay

TODAY = date(2030, 5, 10)


def rules_broken(check_in: date, check_out: date) -> list[tuple[str, str]]:
    with pytest.raises(InvalidStay) as raised:
        Stay.requested(check_in, check_out, today=TODAY)
    return [(e.field, e.code) for e in raised.value.errors]


def test_a_valid_stay_counts_its_nights() -> None:
    stay = Stay.requested(TODAY, TODAY + timedelta(days=3), today=TODAY)
    assert stay.nights == 3


def test_check_in_today_and_the_longest_stay_are_allowed() -> None:
    assert Stay.requested(TODAY, TODAY + timedelta(days=1), today=TODAY).nights == 1
    assert Stay.requested(TODAY, TODAY + timedelta(days=MAX_NIGHTS), today=TODAY).nights == 30


@pytest.mark.parametrize("days", [0, -1, -5])
def test_check_out_must_be_after_check_in(days: int) -> None:
    check_in = TODAY + timedelta(days=10)
    assert rules_broken(check_in, check_in + timedelta(days=days)) == [("check_out", "date_order")]


def test_check_in_must_not_be_in_the_past() -> None:
    yesterday = TODAY - timedelta(days=1)
    assert rules_broken(yesterday, TODAY + timedelta(days=2)) == [("check_in", "date_in_past")]


def test_at_most_30_nights() -> None:
    assert rules_broken(TODAY, TODAY + timedelta(days=31)) == [("check_out", "too_long")]


def test_every_broken_rule_is_reported_as_a_422_problem() -> None:
    with pytest.raises(InvalidStay) as raised:
        Stay.requested(TODAY - timedelta(days=3), TODAY - timedelta(days=4), today=TODAY)
    problem = raised.value
    body = problem.to_body()
    assert problem.status == 422
    assert body["detail"] == "check_in must not be in the past."
    # Same shape as the platform's schema errors, so a client handles both alike.
    assert body["errors"] == [
        {"loc": ["body", "check_in"], "msg": "check_in must not be in the past.", "type": "date_in_past"},
        {"loc": ["body", "check_out"], "msg": "check_out must be after check_in.", "type": "date_order"},
    ]
