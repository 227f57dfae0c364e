"""Seat rules and license keys."""

from __future__ import annotations

import re

import pytest

from auth_service.domain.errors import LicenseRevoked, NoSeatLeft
from auth_service.domain.licenses import (
    LICENSE_KEY_ALPHABET,
    ActivationDecision,
    LicenseStatus,
    decide_activation,
    generate_license_key,
    normalize_license_key,
)

ACTIVE = LicenseStatus.ACTIVE


def test_a_new_machine_takes_a_free_seat() -> None:
    assert decide_activation(status=ACTIVE, seats=3, seats_used=2, machine_has_seat=False) is (
        ActivationDecision.NEW
    )


def test_no_new_machine_once_every_seat_is_taken() -> None:
    with pytest.raises(NoSeatLeft) as raised:
        decide_activation(status=ACTIVE, seats=3, seats_used=3, machine_has_seat=False)
    assert raised.value.status == 409


def test_a_machine_holding_a_seat_keeps_it_even_when_the_license_is_full() -> None:
    assert decide_activation(status=ACTIVE, seats=3, seats_used=3, machine_has_seat=True) is (
        ActivationDecision.EXISTING
    )


@pytest.mark.parametrize("machine_has_seat", [True, False])
def test_a_revoked_license_activates_nothing(machine_has_seat: bool) -> None:
    with pytest.raises(LicenseRevoked) as raised:
        decide_activation(
            status=LicenseStatus.REVOKED, seats=3, seats_used=0, machine_has_seat=machine_has_seat
        )
    assert raised.value.status == 409


def test_keys_are_four_groups_of_unambiguous_symbols_and_differ() -> None:
    keys = {generate_license_key() for _ in range(200)}

    assert len(keys) == 200
    pattern = re.compile(rf"[{LICENSE_KEY_ALPHABET}]{{4}}(-[{LICENSE_KEY_ALPHABET}]{{4}}){{3}}")
    assert all(pattern.fullmatch(key) for key in keys)
    assert not set("01IO") & set(LICENSE_KEY_ALPHABET)


def test_typed_keys_are_compared_upper_case_without_blanks() -> None:
    assert normalize_license_key("  demo-0000-0000-0001\n") == "DEMO-0000-0000-0001"
