"""The HTTP API in-process (real SQLite, real service tokens): availability, holds, allow-list, reaper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from common.testing.apps import running
from common.testing.problems import assert_problem
from common.testing.tokens import service_headers
from inventory_service.app import create_app
from inventory_service.settings import InventorySettings

from .conftest import day, eventually


@pytest.fixture
async def client(app_settings: InventorySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app, app_settings) as c:
        yield c


def hold_body(room_id: str, start: int, end: int, reservation_id: str = "res-1") -> dict[str, Any]:
    return {
        "reservation_id": reservation_id,
        "room_id": room_id,
        "check_in": day(start).isoformat(),
        "check_out": day(end).isoformat(),
    }


async def nights(client: httpx.AsyncClient, room_id: str, start: int, end: int) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/v1/availability", params={"room_id": room_id, "from": day(start), "to": day(end)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["room_id"] == room_id
    result: list[dict[str, Any]] = body["nights"]
    return result


async def test_availability_lists_every_night_of_the_range(
    client: httpx.AsyncClient, add_room, room_id: str, room_headers: Callable[[], dict[str, str]]
) -> None:
    add_room(room_id, capacity=2, days=3)
    held = await client.post("/internal/holds", json=hold_body(room_id, 1, 2), headers=room_headers())
    assert held.status_code == 201

    assert await nights(client, room_id, 0, 4) == [
        {"date": day(0).isoformat(), "capacity": 2, "held": 0, "booked": 0, "available": 2},
        {"date": day(1).isoformat(), "capacity": 2, "held": 1, "booked": 0, "available": 1},
        {"date": day(2).isoformat(), "capacity": 2, "held": 0, "booked": 0, "available": 2},
        # beyond what inventory has: listed, nothing to give
        {"date": day(3).isoformat(), "capacity": 0, "held": 0, "booked": 0, "available": 0},
    ]
    assert len(await nights(client, room_id, 0, 90)) == 90


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"from": day(2), "to": day(2)}, "must be after"),
        ({"from": day(3), "to": day(2)}, "must be after"),
        ({"from": day(0), "to": day(91)}, "91 nights requested; at most 90"),
        ({"from": day(0)}, None),
        ({"to": day(1)}, None),
        ({"from": "2030-02-30", "to": day(1)}, None),
        ({"from": "tomorrow", "to": day(1)}, None),
    ],
)
async def test_availability_rejects_bad_ranges(
    client: httpx.AsyncClient, add_room, room_id: str, params: dict[str, Any], detail: str | None
) -> None:
    add_room(room_id)
    response = await client.get("/api/v1/availability", params={"room_id": room_id, **params})
    assert_problem(response, 422, detail)


async def test_availability_of_an_unknown_room_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/availability", params={"room_id": "r999", "from": day(0), "to": day(1)}
    )
    assert_problem(response, 404, "'r999' is unknown to inventory")
    assert_problem(await client.get("/api/v1/availability", params={"from": day(0), "to": day(1)}), 422)


async def test_a_hold_is_created_once_and_replayed_after(
    client: httpx.AsyncClient, add_room, room_id: str, room_headers: Callable[[], dict[str, str]]
) -> None:
    add_room(room_id, capacity=2, days=3)
    first = await client.post("/internal/holds", json=hold_body(room_id, 0, 2), headers=room_headers())
    assert first.status_code == 201, first.text
    body = first.json()
    assert {k: v for k, v in body.items() if k != "expires_at"} == {
        **hold_body(room_id, 0, 2),
        "status": "held",
    }

    again = await client.post("/internal/holds", json=hold_body(room_id, 0, 2), headers=room_headers())
    assert again.status_code == 200
    assert again.json() == body
    assert [n["held"] for n in await nights(client, room_id, 0, 3)] == [1, 1, 0]


async def test_a_hold_is_atomic_across_nights(
    client: httpx.AsyncClient, add_room, room_id: str, room_headers: Callable[[], dict[str, str]]
) -> None:
    add_room(room_id, capacity=1, days=5)
    taken = await client.post(
        "/internal/holds", json=hold_body(room_id, 3, 4, "res-a"), headers=room_headers()
    )
    assert taken.status_code == 201

    refused = await client.post(
        "/internal/holds", json=hold_body(room_id, 0, 5, "res-b"), headers=room_headers()
    )
    assert_problem(refused, 409, f"no availability for room {room_id} on {day(3).isoformat()}")
    assert [n["held"] for n in await nights(client, room_id, 0, 5)] == [0, 0, 0, 1, 0]


async def test_bad_hold_requests_get_clear_4xx(
    client: httpx.AsyncClient, add_room, room_id: str, room_headers: Callable[[], dict[str, str]]
) -> None:
    add_room(room_id, days=5)
    post = client.post
    assert (
        await post("/internal/holds", json=hold_body(room_id, 0, 1), headers=room_headers())
    ).status_code == 201
    assert_problem(
        await post("/internal/holds", json=hold_body(room_id, 0, 2), headers=room_headers()),
        422,
        "already has a hold for another room or other dates",
    )
    assert_problem(
        await post("/internal/holds", json=hold_body(room_id, 2, 2, "res-2"), headers=room_headers()),
        422,
        "must be after",
    )
    assert_problem(
        await post(
            "/internal/holds", json={**hold_body(room_id, 0, 1, "r3"), "guests": 2}, headers=room_headers()
        ),
        422,
    )
    assert_problem(
        await post(
            "/internal/holds", json={**hold_body(room_id, 0, 1, "r4"), "room_id": 101}, headers=room_headers()
        ),
        422,
    )
    assert_problem(
        await post(
            "/internal/holds",
            json={**hold_body(room_id, 0, 1, "r5"), "check_in": "soon"},
            headers=room_headers(),
        ),
        422,
    )
    assert_problem(
        await post(
            "/internal/holds",
            content=b"{not json",
            headers={**room_headers(), "content-type": "application/json"},
        ),
        400,
    )
    assert_problem(
        await post("/internal/holds", json=hold_body("r999", 0, 1, "r6"), headers=room_headers()),
        404,
        "unknown to inventory",
    )
    assert [n["held"] for n in await nights(client, room_id, 0, 2)] == [1, 0]


async def test_release_is_idempotent(
    client: httpx.AsyncClient, add_room, room_id: str, room_headers: Callable[[], dict[str, str]]
) -> None:
    add_room(room_id, days=2)
    assert (
        await client.post("/internal/holds", json=hold_body(room_id, 0, 2), headers=room_headers())
    ).status_code == 201
    for reservation_id in ("res-1", "res-1", "never-held"):
        response = await client.delete(f"/internal/holds/{reservation_id}", headers=room_headers())
        assert response.status_code == 204
        assert response.content == b""
    assert [n["held"] for n in await nights(client, room_id, 0, 2)] == [0, 0]


async def test_internal_routes_admit_the_room_service_only(
    client: httpx.AsyncClient, settings: InventorySettings, add_room, room_id: str
) -> None:
    add_room(room_id, days=2)
    keys = settings.service_keys_dir
    # Header factories: a service token is good for one request (the callee refuses a replay).
    cases: list[tuple[Callable[[], dict[str, str]], int]] = [
        (dict, 401),  # no service token
        (lambda: service_headers(keys, "member", "inventory"), 403),  # a known service, not on the allow-list
        (lambda: service_headers(keys, "room", "member"), 401),  # room's token, but for another audience
        (lambda: {"X-Service-Token": "garbage"}, 401),
    ]
    for headers, status in cases:
        assert_problem(
            await client.post("/internal/holds", json=hold_body(room_id, 0, 1), headers=headers()), status
        )
        assert_problem(await client.delete("/internal/holds/res-1", headers=headers()), status)
    assert [n["held"] for n in await nights(client, room_id, 0, 2)] == [0, 0]


async def test_the_reaper_frees_an_unconfirmed_hold_after_its_ttl(
    app_settings: InventorySettings, add_room, room_id: str, room_headers: Callable[[], dict[str, str]]
) -> None:
    add_room(room_id, capacity=1, days=2)
    short_ttl = app_settings.model_copy(update={"hold_ttl_s": 1.0})
    async with running(create_app, short_ttl) as client:
        held = await client.post("/internal/holds", json=hold_body(room_id, 0, 2), headers=room_headers())
        assert held.status_code == 201
        assert [n["available"] for n in await nights(client, room_id, 0, 2)] == [0, 0]

        async def freed() -> bool:
            return [n["held"] for n in await nights(client, room_id, 0, 2)] == [0, 0]

        await eventually(freed, what="the reaper to release the hold")
        ready = (await client.get("/health/ready")).json()
        assert ready["checks"]["reaper"]["detail"] == {"healthy": True, "error": None}
        # The expired hold counts nothing; room asking again under the same id takes it afresh.
        again = await client.post("/internal/holds", json=hold_body(room_id, 0, 2), headers=room_headers())
        assert again.status_code == 201
        assert again.json()["status"] == "held"
