"""Users and their roles."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role: every user is a member; an admin is a member who may also administer."""

    MEMBER = "member"
    ADMIN = "admin"


def roles_for(role: Role) -> list[str]:
    """The ``roles`` claim of an access token for a user with ``role``."""
    return [Role.MEMBER.value, Role.ADMIN.value] if role is Role.ADMIN else [Role.MEMBER.value]


class AccountStatus(StrEnum):
    """Member decides (suspension is an admin action there); auth keeps a copy from MemberUpdated."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


def newer_status(held_version: int, event_version: int) -> bool:
    """Whether a MemberUpdated with ``event_version`` is newer than the status auth holds.

    Events of one member arrive in order (one partition), but a redelivery or a redrive from
    the dead-letter topic can bring an old one back: it must not undo a later suspension.
    """
    return event_version > held_version
