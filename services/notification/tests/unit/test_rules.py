"""Notification rules: which copy wins, what each mail says, when to retry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from notification_service.domain import notifications as rules
from notification_service.domain.notifications import Contact, RetryPolicy

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ANN = Contact("m1", "ann@example.com", "Ann", 2)


def test_only_a_newer_version_supersedes_the_contact_copy() -> None:
    assert ANN.superseded_by(3)
    assert not ANN.superseded_by(2)
    assert not ANN.superseded_by(1)


def test_mails_greet_by_name_or_address() -> None:
    assert "Hello Ann," in rules.welcome(ANN).body
    assert "Hello bo," in rules.welcome(Contact("m2", "bo@example.com", None, 1)).body


def test_reservation_and_license_mails_name_what_happened() -> None:
    stay = {
        "reservation_id": "res-1",
        "room_id": "r101",
        "check_in": date(2030, 2, 1),
        "check_out": date(2030, 2, 2),
    }
    confirmed = rules.reservation_confirmed(ANN, {**stay, "nights": 1})
    assert confirmed.subject == "Reservation confirmed: room r101, 2030-02-01 to 2030-02-02"
    assert "(1 night)" in confirmed.body
    assert "res-1" in confirmed.body
    assert rules.reservation_cancelled(ANN, stay).subject.startswith("Reservation cancelled: room r101")
    activated = rules.license_activated(
        ANN, {"product": "studio", "machine_id": "pc-7", "activation_id": "a-1", "license_id": "l-1"}
    )
    assert activated.subject == "License activated: studio on pc-7"


def test_retry_backs_off_exponentially_up_to_the_cap_until_the_horizon() -> None:
    policy = RetryPolicy(horizon_s=10.0, base_s=1.0, cap_s=4.0)
    delays = [policy.next_attempt(attempts, T0, T0) for attempts in range(1, 5)]
    assert delays == [T0 + timedelta(seconds=s) for s in (1, 2, 4, 4)]
    # Jitter takes up to half off; the last try lands on the horizon; after it, give up.
    assert policy.next_attempt(3, T0, T0, jitter=1.0) == T0 + timedelta(seconds=2)
    assert policy.next_attempt(9, T0, T0 + timedelta(seconds=8)) == T0 + timedelta(seconds=10)
    assert policy.next_attempt(10, T0, T0 + timedelta(seconds=10)) is None
