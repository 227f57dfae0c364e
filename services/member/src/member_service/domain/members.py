"""The member profile and its rules: pure Python, no I/O.

Every change bumps ``version`` by one; the version travels in ``MemberUpdated`` so consumers
keeping a copy can tell a newer state from an older one that arrived late. A request that
changes nothing is not a change: no new version, no event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ACTIVE = "active"
SUSPENDED = "suspended"
STANDARD_TIER = "standard"
FIRST_VERSION = 1


def default_display_name(email: str, display_name: str | None) -> str:
    """The name to show: the one given at sign-up, else the address's local part."""
    if display_name and display_name.strip():
        return display_name.strip()
    return email.partition("@")[0] or email


@dataclass
class Member:
    """A member's profile. ``member_id`` is the user id issued by auth."""

    member_id: str
    email: str
    display_name: str
    status: str
    tier: str
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def register(cls, member_id: str, email: str, display_name: str | None, now: datetime) -> Member:
        """A new member: active, standard tier, version 1."""
        return cls(
            member_id=member_id,
            email=email,
            display_name=default_display_name(email, display_name),
            status=ACTIVE,
            tier=STANDARD_TIER,
            version=FIRST_VERSION,
            created_at=now,
            updated_at=now,
        )

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def rename(self, display_name: str, now: datetime) -> bool:
        """Change the display name; True if that was a change (and the version moved on)."""
        if display_name == self.display_name:
            return False
        self.display_name = display_name
        self._changed(now)
        return True

    def suspend(self, now: datetime) -> bool:
        """Suspend the member; True if that was a change (suspending twice changes nothing)."""
        if self.status == SUSPENDED:
            return False
        self.status = SUSPENDED
        self._changed(now)
        return True

    def _changed(self, now: datetime) -> None:
        self.version += 1
        self.updated_at = now
