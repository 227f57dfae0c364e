"""Roles in access tokens."""

from auth_service.domain.users import Role, roles_for


def test_an_admin_is_also_a_member() -> None:
    assert roles_for(Role.MEMBER) == ["member"]
    assert roles_for(Role.ADMIN) == ["member", "admin"]
