"""GET /api/v1/dashboard: four services asked at once; what fails is left out, never the whole."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

PROFILE = {"member_id": "u1", "display_name": "Ada", "status": "active", "version": 1}
RESERVATION = {"reservation_id": "r1", "room_id": "r101", "status": "confirmed"}
ACTIVATION = {"activation_id": "a1", "machine_id": "laptop"}
NOTIFICATION = {"notification_id": "n1", "event_type": "UserRegistered"}
PARTS = {
    "member": ("/api/v1/members/me", PROFILE),
    "room": ("/api/v1/reservations", {"items": [RESERVATION]}),
    "auth": ("/api/v1/licenses", {"items": [ACTIVATION]}),
    "notification": ("/api/v1/notifications", {"items": [NOTIFICATION]}),
}


def serve_parts(upstreams, *, skip: str | None = None) -> None:
    for name, (path, body) in PARTS.items():
        if name != skip:
            upstreams[name].answer("GET", path, (200, body))


async def test_all_parts_in_one_answer(client, upstreams, users):
    serve_parts(upstreams)
    headers = users.headers("u1")

    response = await client.get("/api/v1/dashboard", headers=headers)

    assert response.status_code == 200
    assert response.json() == {
        "profile": PROFILE,
        "reservations": [RESERVATION],
        "licenses": [ACTIVATION],
        "notifications": [NOTIFICATION],
        "degraded": False,
        "missing": [],
    }
    for name, (path, _) in PARTS.items():
        [seen] = upstreams[name].requests(path)
        assert seen.headers["authorization"] == headers["Authorization"]  # each service sees the user


async def test_parts_are_asked_in_parallel(client, upstreams, users):
    # Every part waits until all four requests have arrived: asked one after another, the first
    # would wait forever (until its timeout) and be missing.
    arrived = 0
    all_arrived = asyncio.Event()

    def together(body: dict) -> object:
        async def handler(_request: Request) -> Response:
            nonlocal arrived
            arrived += 1
            if arrived == len(PARTS):
                all_arrived.set()
            await all_arrived.wait()
            return JSONResponse(body)

        return handler

    for name, (path, body) in PARTS.items():
        upstreams[name].handle("GET", path, together(body))

    response = await client.get("/api/v1/dashboard", headers=users.headers("u1"))

    assert response.status_code == 200
    assert response.json()["degraded"] is False


async def test_a_service_down_leaves_its_part_out(gateway_with, upstreams, users, closed_port):
    serve_parts(upstreams, skip="notification")
    async with gateway_with(notification_url=f"http://127.0.0.1:{closed_port}") as gw, gw.client() as client:
        response = await client.get("/api/v1/dashboard", headers=users.headers("u1"))

    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    assert body["missing"] == ["notifications"]
    assert body["notifications"] is None
    assert body["profile"] == PROFILE
    assert body["reservations"] == [RESERVATION]
    assert body["licenses"] == [ACTIVATION]


async def test_a_slow_service_is_cut_off_at_the_part_timeout(gateway_with, upstreams, users):
    serve_parts(upstreams, skip="room")
    upstreams["room"].slow("GET", "/api/v1/reservations")
    async with gateway_with(dashboard_part_timeout_s=0.3) as gw, gw.client() as client:
        response = await client.get("/api/v1/dashboard", headers=users.headers("u1"))

    assert response.status_code == 200
    assert response.json()["missing"] == ["reservations"]
    assert response.json()["profile"] == PROFILE
    # The service was given the part's budget, not the request's.
    [seen] = upstreams["room"].requests("/api/v1/reservations")
    assert int(seen.headers["x-deadline-ms"]) <= 300


async def test_failing_and_odd_answers_are_missing_parts(client, upstreams, users):
    serve_parts(upstreams)
    upstreams["auth"].answer("GET", "/api/v1/licenses", (500, b"boom"))
    upstreams["notification"].answer("GET", "/api/v1/notifications", (200, b"<html>not json</html>"))

    response = await client.get("/api/v1/dashboard", headers=users.headers("u1"))

    assert response.status_code == 200
    body = response.json()
    assert body["missing"] == ["licenses", "notifications"]
    assert body["licenses"] is None
    assert body["notifications"] is None
    assert body["degraded"] is True


async def test_a_services_problem_leaves_its_part_out(client, upstreams, users):
    serve_parts(upstreams)
    member_down = {"type": "x", "title": "Service Unavailable", "status": 503, "detail": "member is down"}
    upstreams["room"].answer("GET", "/api/v1/reservations", (503, member_down, {"Retry-After": "7"}))

    response = await client.get("/api/v1/dashboard", headers=users.headers("u1"))

    assert response.status_code == 200
    body = response.json()
    assert body["missing"] == ["reservations"]
    assert body["reservations"] is None
    assert body["profile"] == PROFILE
    assert body["degraded"] is True


async def test_no_profile_yet_is_an_answer_not_a_failure(client, upstreams, users):
    serve_parts(upstreams, skip="member")
    upstreams["member"].answer("GET", "/api/v1/members/me", (404, {"status": 404, "title": "Not Found"}))

    response = await client.get("/api/v1/dashboard", headers=users.headers("u1"))

    assert response.status_code == 200
    body = response.json()
    assert body["profile"] is None
    assert body["degraded"] is False
    assert body["missing"] == []
