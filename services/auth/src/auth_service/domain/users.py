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
