"""Member status and profile updates: suspension blocks reservations; updates stay ordered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import Stays, User, assert_problem, eventually


def test_a_suspended_member_cannot_reserve(
    client: httpx.Client, new_member: Callable[..., User], admin: dict[str, str], stays: Stays
) -> None:
    user = new_member("suspect")
    check_in, check_out = stays.take(1)

    suspended = client.post(f"/api/v1/admin/members/{user.user_id}/suspend", headers=admin)

    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert client.get("/api/v1/members/me", headers=user.auth).json()["status"] == "suspended"
    refused = client.post(
        "/api/v1/reservations",
        headers=user.headers(),
        json={"room_id": "r101", "check_in": check_in, "check_out": check_out},
    )
    assert_problem(refused, 403)
    assert client.get("/api/v1/reservations", headers=user.auth).json()["items"] == []


def test_suspending_an_unknown_member_is_404(client: httpx.Client, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/admin/members/00000000-0000-0000-0000-000000000000/suspend", headers=admin
    )

    assert_problem(response, 404)


def test_two_quick_profile_updates_leave_the_contact_copy_at_the_last_version(
    client: httpx.Client, new_member: Callable[..., User]
) -> None:
    user = new_member("renamer")
    eventually(
        lambda: client.get("/api/v1/notifications/contact", headers=user.auth).status_code == 200,
        "the contact copy from UserRegistered",
    )

    first = client.patch("/api/v1/members/me", headers=user.auth, json={"display_name": "Renamed Once"})
    second = client.patch("/api/v1/members/me", headers=user.auth, json={"display_name": "Renamed Twice"})

    assert (first.status_code, second.status_code) == (200, 200), second.text
    assert (first.json()["version"], second.json()["version"]) == (2, 3)

    def contact() -> dict[str, object] | None:
        response = client.get("/api/v1/notifications/contact", headers=user.auth)
        body: dict[str, object] = response.json()
        return body if body.get("version") == 3 else None

    settled = eventually(contact, "the contact copy at version 3", within=10)
    assert settled["display_name"] == "Renamed Twice"
    assert settled["email"] == user.email
    time.sleep(1.0)  # a late, older MemberUpdated would show here
    assert client.get("/api/v1/notifications/contact", headers=user.auth).json() == settled
    profile = client.get("/api/v1/members/me", headers=user.auth).json()
    assert (profile["version"], profile["display_name"]) == (3, "Renamed Twice")


def test_ten_concurrent_profile_updates_get_ten_versions_and_the_contact_copy_ends_at_the_last(
    client: httpx.Client, new_member: Callable[..., User]
) -> None:
    user = new_member("busy")
    start = threading.Barrier(10)

    def rename(i: int) -> httpx.Response:
        start.wait(timeout=30)
        return client.patch("/api/v1/members/me", headers=user.auth, json={"display_name": f"Name {i}"})

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(rename, range(10)))

    assert [a.status_code for a in answers] == [200] * 10, [a.text[:200] for a in answers]
    versions = sorted(a.json()["version"] for a in answers)
    assert versions == list(range(2, 12))
    last = next(a.json() for a in answers if a.json()["version"] == 11)
    assert client.get("/api/v1/members/me", headers=user.auth).json()["display_name"] == last["display_name"]
    settled = eventually(
        lambda: (
            (c := client.get("/api/v1/notifications/contact", headers=user.auth).json()).get("version") == 11
            and c
        ),
        "the contact copy at version 11",
    )
    assert settled["display_name"] == last["display_name"]
