"""A display name is shown to others and mailed: no control or bidi characters reach the profile."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from common.db import Database
from common.testing.tokens import TestUsers
from member_service.service_layer.members import register_member


@pytest.mark.parametrize(
    "name",
    ["Ann\x00", "Ann\r\nBcc: all@example.com", "Ann\nB", "Ann\u202egnp.exe", "Ann\u2066B", "Ann\x1b[2J"],
    ids=["nul", "crlf", "lf", "rlo", "lri", "escape"],
)
async def test_patch_refuses_control_and_bidi_characters(
    client: httpx.AsyncClient, users: TestUsers, db: Database, name: str
) -> None:
    member_id = str(uuid.uuid4())
    with db.transaction() as session:
        register_member(session, member_id, "ann@example.com", "Ann", datetime.now(UTC))
    headers = users.headers(member_id)

    response = await client.patch("/api/v1/members/me", json={"display_name": name}, headers=headers)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["loc"] == ["body", "display_name"]
    profile = await client.get("/api/v1/members/me", headers=headers)
    assert profile.json()["display_name"] == "Ann"
