"""Flow 3: license activation (synchronous, seats enforced atomically, idempotent per machine)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import DEMO_LICENSE_KEY, Mailbox, User, assert_problem, eventually


def _activate(client: httpx.Client, user: User, key: str, machine: str) -> httpx.Response:
    return client.post(
        "/api/v1/licenses/activate", headers=user.auth, json={"license_key": key, "machine_id": machine}
    )


def test_three_seats_three_machines_the_fourth_is_409_the_first_again_is_the_same_activation(
    client: httpx.Client, new_member: Callable[..., User], admin: dict[str, str], mailbox: Mailbox
) -> None:
    user = new_member("licensee")
    issued = client.post("/api/v1/licenses", headers=admin, json={"product": "E2E Studio", "seats": 3})
    assert issued.status_code == 201, issued.text
    license_ = issued.json()
    assert (license_["seats"], license_["status"], license_["product"]) == (3, "active", "E2E Studio")
    key = license_["license_key"]
    assert key != DEMO_LICENSE_KEY

    first, second, third = (_activate(client, user, key, f"machine-{n}") for n in (1, 2, 3))
    fourth = _activate(client, user, key, "machine-4")
    first_again = _activate(client, user, key, "machine-1")

    assert [r.status_code for r in (first, second, third)] == [200, 200, 200], third.text
    assert [r.json()["seats_used"] for r in (first, second, third)] == [1, 2, 3]
    assert third.json()["seats_total"] == 3
    assert_problem(fourth, 409)
    assert first_again.status_code == 200, first_again.text
    assert first_again.json()["activation_id"] == first.json()["activation_id"]
    assert first_again.json()["seats_used"] == 3
    mine = client.get("/api/v1/licenses", headers=user.auth)
    assert mine.status_code == 200
    assert sorted(a["machine_id"] for a in mine.json()["items"]) == ["machine-1", "machine-2", "machine-3"]
    # LicenseActivated for new activations only: three mails, three history entries.
    mailbox.assert_exactly(3, user.email, "License activated: E2E Studio")
    eventually(
        lambda: (
            [i["kind"] for i in client.get("/api/v1/members/me/history", headers=user.auth).json()["items"]]
            == ["license_activated"] * 3
        ),
        "three activations in the member history",
    )


def test_an_unknown_license_key_is_404(client: httpx.Client, new_member: Callable[..., User]) -> None:
    user = new_member("guesser")

    assert_problem(_activate(client, user, "NOPE-0000-0000-0000", "machine-1"), 404)


def test_only_an_admin_issues_licenses_and_the_demo_license_is_seeded(
    client: httpx.Client, admin: dict[str, str]
) -> None:
    # The seeded admin is an admin (its token carries the role); the demo license is not
    # activated here, so the README's walkthrough still finds its three seats free.
    issued = client.post("/api/v1/licenses", headers=admin, json={"product": "Admin Check", "seats": 1})
    assert issued.status_code == 201, issued.text
    assert issued.json()["license_key"] != DEMO_LICENSE_KEY


def test_twelve_machines_racing_for_three_seats_get_exactly_three(
    client: httpx.Client, new_member: Callable[..., User], admin: dict[str, str]
) -> None:
    users = [new_member(f"seat{i}") for i in range(3)]
    key = client.post("/api/v1/licenses", headers=admin, json={"product": "Race Pack", "seats": 3}).json()[
        "license_key"
    ]
    start = threading.Barrier(12)

    def activate(i: int) -> httpx.Response:
        start.wait(timeout=30)
        return _activate(client, users[i % 3], key, f"racer-{i}")

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(activate, range(12)))

    assert Counter(a.status_code for a in answers) == {200: 3, 409: 9}, [a.text[:200] for a in answers]
    won = [a.json() for a in answers if a.status_code == 200]
    assert sorted(a["seats_used"] for a in won) == [1, 2, 3]
    # The same machine again, concurrently: one activation, the same answer for each.
    again = won[0]["machine_id"]
    owner = users[int(again.rsplit("-", 1)[1]) % 3]
    with ThreadPoolExecutor(max_workers=5) as pool:
        repeats = list(pool.map(lambda _: _activate(client, owner, key, again), range(5)))
    assert [r.status_code for r in repeats] == [200] * 5
    assert {r.json()["activation_id"] for r in repeats} == {won[0]["activation_id"]}
