"""The demo data `make up` seeds is there, and seeding again adds nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx

from stack.runner import Stack

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, SEEDED_DAYS, Mailbox, Stays, User, availability, login


def test_the_demo_data_is_seeded_and_seeding_again_changes_nothing(
    client: httpx.Client, stack: Stack, new_member: Callable[..., User], stays: Stays, mailbox: Mailbox
) -> None:
    user = new_member("seeded")
    stay = stays.take(1)
    made = client.post(
        "/api/v1/reservations",
        headers=user.headers(),
        json={"room_id": "r102", "check_in": stay[0], "check_out": stay[1]},
    )
    assert made.status_code == 201, made.text
    rooms = client.get("/api/v1/rooms").json()["items"]
    window = (stays.today.isoformat(), (stays.today + timedelta(days=SEEDED_DAYS)).isoformat())
    units = {room["room_id"]: availability(client, room["room_id"], *window) for room in rooms}
    booked = availability(client, "r102", *stay)

    stack.seed()

    assert [r["room_id"] for r in rooms] == ["r101", "r102", "r103", "r104", "r105"]
    assert client.get("/api/v1/rooms").json()["items"] == rooms
    assert {room_id: len(nights) for room_id, nights in units.items()} == dict.fromkeys(units, SEEDED_DAYS)
    assert {n["capacity"] for n in units["r101"]} == {2}
    assert {n["capacity"] for n in units["r105"]} == {1}
    assert availability(client, "r102", *stay) == booked
    assert login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert len(mailbox.to(ADMIN_EMAIL, "Welcome")) == 1  # one admin, signed up once
