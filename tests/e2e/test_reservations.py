"""Flow 4: the hybrid reservation (synchronous checks, asynchronous side effects) and cancel."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import Mailbox, Stays, User, assert_problem, availability, eventually


def _reserve(client: httpx.Client, user: User, room_id: str, stay: tuple[str, str], key: str | None = None):
    return client.post(
        "/api/v1/reservations",
        headers=user.headers(key),
        json={"room_id": room_id, "check_in": stay[0], "check_out": stay[1]},
    )


def _counts(client: httpx.Client, room_id: str, stay: tuple[str, str]) -> list[tuple[int, int, int]]:
    """``(held, booked, available)`` per night of the stay."""
    return [(n["held"], n["booked"], n["available"]) for n in availability(client, room_id, *stay)]


def _history_kinds(client: httpx.Client, user: User, ref_id: str) -> list[str]:
    response = client.get("/api/v1/members/me/history", headers=user.auth)
    assert response.status_code == 200, response.text
    return [item["kind"] for item in response.json()["items"] if item["ref_id"] == ref_id]


def test_reserve_then_cancel_books_records_mails_and_restores_once_each(
    client: httpx.Client, new_member: Callable[..., User], stays: Stays, mailbox: Mailbox
) -> None:
    user = new_member("reserver")
    stay = stays.take(2)
    capacity = availability(client, "r102", *stay)[0]["capacity"]
    assert _counts(client, "r102", stay) == [(0, 0, capacity)] * 2

    created = _reserve(client, user, "r102", stay)

    assert created.status_code == 201, created.text
    reservation = created.json()
    rid = reservation["reservation_id"]
    assert reservation["status"] == "confirmed"
    assert reservation["member_id"] == user.user_id
    assert (reservation["check_in"], reservation["check_out"], reservation["nights"]) == (*stay, 2)
    # Within 10 s: inventory confirmed the hold, member recorded it, notification mailed once.
    eventually(
        lambda: _counts(client, "r102", stay) == [(0, 1, capacity - 1)] * 2, "the nights booked", within=10
    )
    eventually(lambda: _history_kinds(client, user, rid) == ["reservation_created"], "history", within=10)
    [confirmation] = mailbox.assert_exactly(1, user.email, "Reservation confirmed", contains=rid)
    assert f"room r102, {stay[0]} to {stay[1]}" in confirmation["subject"]
    mine = client.get(f"/api/v1/reservations/{rid}", headers=user.auth)
    assert mine.status_code == 200
    assert mine.json() == reservation

    cancelled = client.delete(f"/api/v1/reservations/{rid}", headers=user.auth)
    again = client.delete(f"/api/v1/reservations/{rid}", headers=user.auth)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_at"]
    assert again.status_code == 200
    assert again.json() == cancelled.json()
    eventually(
        lambda: _counts(client, "r102", stay) == [(0, 0, capacity)] * 2, "the nights released", within=10
    )
    eventually(
        lambda: sorted(_history_kinds(client, user, rid)) == ["reservation_cancelled", "reservation_created"],
        "the cancellation in the history",
        within=10,
    )
    mailbox.assert_exactly(1, user.email, "Reservation cancelled", contains=rid)
    mailbox.assert_exactly(1, user.email, "Reservation confirmed", contains=rid, settle=0)


def test_the_same_idempotency_key_five_times_makes_one_reservation_and_one_mail(
    client: httpx.Client, new_member: Callable[..., User], stays: Stays, mailbox: Mailbox
) -> None:
    user = new_member("retrier")
    stay = stays.take(1)
    key = "retry-me-please"

    answers = [_reserve(client, user, "r103", stay, key) for _ in range(5)]

    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers)
    rid = answers[0].json()["reservation_id"]
    listed = client.get("/api/v1/reservations", headers=user.auth)
    assert listed.status_code == 200
    assert [r["reservation_id"] for r in listed.json()["items"]] == [rid]
    mailbox.assert_exactly(1, user.email, "Reservation confirmed", contains=rid)
    eventually(lambda: _counts(client, "r103", stay)[0][:2] == (0, 1), "one night booked", within=10)

    other_body = _reserve(client, user, "r103", stays.take(1), key)

    assert_problem(other_body, 422)
    assert len(client.get("/api/v1/reservations", headers=user.auth).json()["items"]) == 1


def test_forty_concurrent_reservations_for_the_last_free_unit_one_wins_the_rest_get_409(
    client: httpx.Client, new_member: Callable[..., User], stays: Stays
) -> None:
    racers = [new_member(f"racer{i}") for i in range(4)]
    stay = stays.take(1)
    # r101 has two units: one is taken first, so the race is for the last free one.
    first = _reserve(client, racers[0], "r101", stay)
    assert first.status_code == 201, first.text
    assert _counts(client, "r101", stay)[0][2] == 1

    start = threading.Barrier(40)

    def attempt(i: int) -> httpx.Response:
        start.wait(timeout=30)
        return _reserve(client, racers[i % len(racers)], "r101", stay, key=f"race-{i}")

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(attempt, range(40)))

    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 409: 39}, {s: n for s, n in statuses.items()} | {
        "bodies": sorted({a.text[:200] for a in answers if a.status_code not in (201, 409)})
    }
    for refused in (a for a in answers if a.status_code == 409):
        assert_problem(refused, 409)
    # Consistent afterwards: both units booked (the winner's hold confirmed), none held.
    eventually(lambda: _counts(client, "r101", stay) == [(0, 2, 0)], "2 booked, 0 held", within=10)
    booked = [
        r
        for racer in racers
        for r in client.get("/api/v1/reservations", headers=racer.auth).json()["items"]
        if r["room_id"] == "r101" and r["check_in"] == stay[0] and r["status"] == "confirmed"
    ]
    assert len(booked) == 2


def test_ten_concurrent_twins_with_one_idempotency_key_make_one_reservation_and_one_mail(
    client: httpx.Client, new_member: Callable[..., User], stays: Stays, mailbox: Mailbox
) -> None:
    """A client that retries before the first answer came back: the twins race to commit."""
    user = new_member("impatient")
    stay = stays.take(1)
    start = threading.Barrier(10)

    def twin(_: int) -> httpx.Response:
        start.wait(timeout=30)
        return _reserve(client, user, "r104", stay, key="one-key-ten-twins")

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(twin, range(10)))

    assert [a.status_code for a in answers] == [201] * 10, [a.text[:200] for a in answers]
    assert len({a.json()["reservation_id"] for a in answers}) == 1
    rid = answers[0].json()["reservation_id"]
    assert [
        r["reservation_id"] for r in client.get("/api/v1/reservations", headers=user.auth).json()["items"]
    ] == [rid]
    eventually(lambda: _counts(client, "r104", stay)[0][:2] == (0, 1), "one night booked, none held")
    mailbox.assert_exactly(1, user.email, "Reservation confirmed", contains=rid)
