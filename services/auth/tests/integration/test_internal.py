"""`GET /internal/users/{id}`: for the member service only, with a service token."""

from __future__ import annotations

import pytest

from auth_service.settings import AuthSettings
from common.testing.tokens import service_headers

from .conftest import AuthApi

pytestmark = pytest.mark.kafka


async def test_internal_user_lookup_is_for_member_only(api: AuthApi, settings: AuthSettings) -> None:
    user = await api.new_user()
    path = f"/internal/users/{user.user_id}"
    # Both callers' keys exist before auth first reads the keys folder (it rereads at most once a second).
    room = service_headers(settings.service_keys_dir, "room", "auth")
    member = service_headers(settings.service_keys_dir, "member", "auth")

    anonymous = await api.client.get(path)
    as_user = await api.client.get(path, headers=user.headers)  # a user token is no service token
    as_room = await api.client.get(path, headers=room)
    as_member = await api.client.get(path, headers=member)
    unknown = await api.client.get(
        "/internal/users/00000000-0000-0000-0000-000000000000",
        headers=service_headers(settings.service_keys_dir, "member", "auth"),
    )

    assert anonymous.status_code == 401
    assert as_user.status_code == 401
    assert as_room.status_code == 403
    assert as_member.status_code == 200
    assert as_member.json() == {
        "user_id": user.user_id,
        "email": user.email,
        "display_name": "Ann",
        "roles": ["member"],
    }
    assert unknown.status_code == 404
