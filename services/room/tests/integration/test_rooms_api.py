"""The public rooms catalog."""

from __future__ import annotations

from .conftest import Room


async def test_lists_the_seeded_rooms_without_a_token(room: Room) -> None:
    response = await room.client.get("/api/v1/rooms")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [r["room_id"] for r in items] == ["r101", "r102", "r103", "r104", "r105"]
    assert set(items[0]) == {"room_id", "name", "description", "capacity", "nightly_rate"}


async def test_one_room_and_an_unknown_one(room: Room) -> None:
    found = await room.client.get("/api/v1/rooms/r104")
    assert found.status_code == 200
    assert found.json()["name"] == "Family Suite"
    missing = await room.client.get("/api/v1/rooms/r999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "r999" in missing.json()["detail"]
