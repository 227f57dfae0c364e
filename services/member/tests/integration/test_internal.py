"""GET /internal/members/{id}: only room and auth may ask."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from common.db import Database
from common.testing.tokens import TestUsers, service_headers
from member_service.service_layer.members import register_member
from member_service.settings import MemberSettings


async def test_internal_member_route_allows_room_and_auth_only(
    client: httpx.AsyncClient, db: Database, settings: MemberSettings, users: TestUsers
) -> None:
    member_id = str(uuid.uuid4())
    with db.transaction() as session:
        register_member(session, member_id, "ann@example.com", "Ann", datetime.now(UTC))
    url = f"/internal/members/{member_id}"
    # Every caller's key exists before the first call (the app re-reads the key folder on a
    # miss at most once a second).
    callers = {
        name: service_headers(settings.service_keys_dir, name, "member")
        for name in ("room", "auth", "notification")
    }
    elsewhere = service_headers(settings.service_keys_dir, "room", "inventory")

    for caller in ("room", "auth"):
        response = await client.get(url, headers=callers[caller])
        assert response.status_code == 200, (caller, response.text)
        assert response.json() == {
            "member_id": member_id,
            "status": "active",
            "tier": "standard",
            "active": True,
        }

    assert (await client.get(url, headers=callers["notification"])).status_code == 403
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers=elsewhere)).status_code == 401  # minted for another callee
    as_user = await client.get(url, headers=users.headers(member_id))
    assert as_user.status_code == 401  # a user token is no service token

    # A service token is good for one request: later calls mint their own (a replay is a 401).
    def fresh(name: str) -> dict[str, str]:
        return service_headers(settings.service_keys_dir, name, "member")

    unknown = await client.get(f"/internal/members/{uuid.uuid4()}", headers=fresh("room"))
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")

    admin = users.headers(str(uuid.uuid4()), admin=True)
    assert (await client.post(f"/api/v1/admin/members/{member_id}/suspend", headers=admin)).status_code == 200
    suspended = await client.get(url, headers=fresh("room"))
    assert suspended.json() == {
        "member_id": member_id,
        "status": "suspended",
        "tier": "standard",
        "active": False,
    }
