"""/admin/faults in shared-secret mode: the same callers, the same answers as with service tokens."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from common.app_factory import create_service_app
from common.auth import SharedSecretServiceAuth
from common.faults import Switchboard, faults_router

SECRET = "a-shared-secret-for-tests"
SPEC = {"kind": "drop", "where": "upstream", "match": "inventory", "ttl_s": 30}


@pytest.fixture
def board() -> Switchboard:
    return Switchboard("t-admin")


@pytest.fixture
def app(board: Switchboard) -> FastAPI:
    auth = SharedSecretServiceAuth("room", SECRET)
    return create_service_app(
        service="room", title="t", routers=[faults_router()], state={"faults": board, "service_auth": auth}
    )


def _as(caller: str, secret: str = SECRET) -> dict[str, str]:
    return SharedSecretServiceAuth(caller, secret).headers_for("room")


async def test_shared_secret_callers(app: FastAPI, board: Switchboard) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://room") as client:
        assert (await client.put("/admin/faults/cut", json=SPEC)).status_code == 401
        assert (
            await client.put("/admin/faults/cut", json=SPEC, headers=_as("ops", "not-the-shared-secret"))
        ).status_code == 401
        assert (await client.put("/admin/faults/cut", json=SPEC, headers=_as("member"))).status_code == 403
        assert board.list() == []
        put = await client.put("/admin/faults/cut", json=SPEC, headers=_as("ops"))
        assert put.status_code == 200
        assert put.json()["expires_at"] > put.json()["set_at"]
        assert board.get("cut") is not None
        listed = await client.get("/admin/faults", headers=_as("gateway"))
        assert [f["name"] for f in listed.json()["faults"]] == ["cut"]
        assert (await client.delete("/admin/faults", headers=_as("gateway"))).status_code == 204
    assert board.list() == []


@pytest.mark.parametrize(
    "body",
    [
        {**SPEC, "ttl_s": 3601},
        {**SPEC, "kind": "pause"},
        {**SPEC, "extra": 1},
        {"kind": "drop"},
        [],
    ],
)
async def test_bad_bodies_are_422_problems_and_set_nothing(
    app: FastAPI, board: Switchboard, body: object
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://room") as client:
        response = await client.put("/admin/faults/cut", json=body, headers=_as("ops"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert board.list() == []
