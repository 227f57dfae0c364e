"""/api/v1/admin/faults: admins only; the gateway's own switches here, the others' passed on."""

from __future__ import annotations

import httpx
import pytest

from common.testing.tokens import TestUsers

from .conftest import Gateway, Stub

SLOW = {"kind": "latency", "where": "inbound", "match": "/internal", "latency_ms": 1500, "ttl_s": 60}
PATHS = [
    ("GET", "/api/v1/admin/faults/member"),
    ("DELETE", "/api/v1/admin/faults/member"),
    ("PUT", "/api/v1/admin/faults/member/slow"),
    ("GET", "/api/v1/admin/faults/member/slow"),
    ("DELETE", "/api/v1/admin/faults/member/slow"),
    ("PUT", "/api/v1/admin/faults/gateway/slow"),
    ("GET", "/api/v1/admin/faults/gateway"),
]


@pytest.mark.parametrize(("method", "path"), PATHS)
@pytest.mark.parametrize("who", ["anonymous", "forged", "member"])
async def test_nobody_but_an_admin_reaches_a_switch(
    client: httpx.AsyncClient, users: TestUsers, upstreams: dict[str, Stub], who: str, method: str, path: str
) -> None:
    headers = {
        "anonymous": {},
        "forged": {"Authorization": "Bearer not.a.token"},
        "member": users.headers("u1"),
    }[who]
    response = await client.request(method, path, headers=headers, json=SLOW if method == "PUT" else None)
    assert response.status_code == (403 if who == "member" else 401)
    assert response.headers["content-type"] == "application/problem+json"
    assert upstreams["member"].requests() == []  # refused at the gateway


async def test_an_admin_sets_lists_and_clears_the_gateways_own_switches(
    gateway: Gateway, client: httpx.AsyncClient, users: TestUsers, upstreams: dict[str, Stub]
) -> None:
    admin = users.headers("a1", admin=True)
    put = await client.put("/api/v1/admin/faults/gateway/slow", headers=admin, json=SLOW)
    assert put.status_code == 200
    assert put.json()["name"] == "slow"
    assert put.json()["hits"] == 0
    assert gateway.app.state.faults.get("slow") is not None
    listed = await client.get("/api/v1/admin/faults/gateway", headers=admin)
    assert [f["name"] for f in listed.json()["faults"]] == ["slow"]
    assert (await client.get("/api/v1/admin/faults/gateway/slow", headers=admin)).status_code == 200
    assert (await client.delete("/api/v1/admin/faults/gateway/slow", headers=admin)).status_code == 204
    assert (await client.get("/api/v1/admin/faults/gateway/slow", headers=admin)).status_code == 404
    assert (await client.delete("/api/v1/admin/faults/gateway", headers=admin)).status_code == 204
    assert all(stub.requests() == [] for name, stub in upstreams.items() if name != "auth")


async def test_an_admins_switch_for_a_service_is_passed_on_with_the_gateways_token(
    client: httpx.AsyncClient, users: TestUsers, upstreams: dict[str, Stub], service_caller
) -> None:
    stored = {**SLOW, "name": "slow", "hits": 0}
    upstreams["member"].answer("PUT", "/admin/faults/slow", (200, stored))
    upstreams["member"].answer("DELETE", "/admin/faults/slow", (204, None))
    admin = users.headers("a1", admin=True)
    put = await client.put("/api/v1/admin/faults/member/slow", headers=admin, json=SLOW)
    assert put.status_code == 200
    assert put.json() == stored
    deleted = await client.delete("/api/v1/admin/faults/member/slow", headers=admin)
    assert deleted.status_code == 204
    seen = upstreams["member"].requests()
    assert [(s.method, s.path) for s in seen] == [
        ("PUT", "/admin/faults/slow"),
        ("DELETE", "/admin/faults/slow"),
    ]
    assert httpx.Response(200, content=seen[0].body).json() == {**SLOW, "probability": 1.0}
    assert service_caller("member", seen[0].headers).caller == "gateway"
    assert "authorization" not in seen[0].headers  # the admin's token stays at the gateway


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/admin/faults/billing/slow", SLOW, 404),  # no such service
        ("/api/v1/admin/faults/member/slow", {**SLOW, "latency_ms": 999_999}, 422),
        ("/api/v1/admin/faults/member/slow", {**SLOW, "surprise": True}, 422),
        ("/api/v1/admin/faults/member/slow", {"kind": "pause", "where": "inbound", "match": "/"}, 422),
        ("/api/v1/admin/faults/member/bad%20name", SLOW, 422),
        ("/api/v1/admin/faults/gateway/slow", {**SLOW, "ttl_s": 0}, 422),
    ],
)
async def test_bad_switches_and_unknown_services_are_problems(
    client: httpx.AsyncClient,
    users: TestUsers,
    upstreams: dict[str, Stub],
    path: str,
    body: dict,
    status: int,
) -> None:
    response = await client.put(path, headers=users.headers("a1", admin=True), json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert upstreams["member"].requests() == []
