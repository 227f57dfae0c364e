"""Software licenses: a key with a number of seats, each seat bound to one machine."""

from __future__ import annotations

import secrets
from enum import Enum, StrEnum

from auth_service.domain.errors import LicenseRevoked, NoSeatLeft

# No 0/O or 1/I: keys are read aloud and typed by hand. 32 symbols, 16 of them: 80 random bits.
LICENSE_KEY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
LICENSE_KEY_GROUPS = 4
LICENSE_KEY_GROUP_LENGTH = 4


class LicenseStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class ActivationDecision(Enum):
    """The outcome of an activation request that is allowed."""

    EXISTING = "existing"  # this machine already holds a seat: answer with that activation
    NEW = "new"  # take a free seat


def generate_license_key() -> str:
    """A new random key like ``7KQM-XR4T-9WHC-PD2N``."""
    groups = (
        "".join(secrets.choice(LICENSE_KEY_ALPHABET) for _ in range(LICENSE_KEY_GROUP_LENGTH))
        for _ in range(LICENSE_KEY_GROUPS)
    )
    return "-".join(groups)


def normalize_license_key(raw: str) -> str:
    """Keys are compared upper-case without surrounding blanks (people type them)."""
    return raw.strip().upper()


def decide_activation(
    *, status: LicenseStatus, seats: int, seats_used: int, machine_has_seat: bool
) -> ActivationDecision:
    """Whether a machine may activate a license; raises ``LicenseRevoked`` or ``NoSeatLeft``.

    A machine that already holds a seat keeps it (re-activation is idempotent and costs no
    seat); any other machine needs a free one.
    """
    if status is LicenseStatus.REVOKED:
        raise LicenseRevoked()
    if machine_has_seat:
        return ActivationDecision.EXISTING
    if seats_used >= seats:
        raise NoSeatLeft(seats)
    return ActivationDecision.NEW
