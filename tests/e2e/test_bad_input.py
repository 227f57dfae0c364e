"""What users will try: each gets a clear 4xx problem, never a 5xx."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from .conftest import Stays, User, assert_problem


@pytest.fixture(scope="module")
def user(new_member: Callable[..., User]) -> User:
    return new_member("clumsy")


def _post(
    client: httpx.Client, user: User, *, json: object = None, content: bytes | None = None
) -> httpx.Response:
    headers = user.headers()
    if content is not None:
        headers["Content-Type"] = "application/json"
    return client.post("/api/v1/reservations", headers=headers, json=json, content=content)


def test_malformed_json_is_a_4xx_problem(client: httpx.Client, user: User) -> None:
    for body in (b"{not json", b"", b"[1, 2", b'{"room_id": "r101",}'):
        response = _post(client, user, content=body)
        assert_problem(response, (400, 422))
    signup = client.post(
        "/api/v1/auth/signup", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert_problem(signup, (400, 422))


@pytest.mark.parametrize(
    "body",
    [
        {"room_id": 101, "check_in": "2030-01-01", "check_out": "2030-01-02"},
        {"room_id": "r101", "check_in": "tomorrow", "check_out": "2030-01-02"},
        {"room_id": "r101", "check_in": 20300101, "check_out": True},
        {"room_id": ["r101"], "check_in": {"day": 1}, "check_out": None},
        {"room_id": "r101"},
        [],
        "r101",
    ],
)
def test_wrong_types_and_missing_fields_are_422(client: httpx.Client, user: User, body: object) -> None:
    assert_problem(_post(client, user, json=body), 422)


def test_bad_dates_are_422(client: httpx.Client, user: User, stays: Stays) -> None:
    check_in, check_out = stays.take(1)
    today = datetime.now(UTC).date()
    for stay in (
        (check_in, check_in),  # check_out == check_in
        (check_out, check_in),  # check_out before check_in
        ((today - timedelta(days=3)).isoformat(), (today - timedelta(days=1)).isoformat()),  # past
        (check_in, (datetime.fromisoformat(check_in) + timedelta(days=31)).date().isoformat()),  # 31 nights
        ("2030-02-30", "2030-03-02"),  # no such day
    ):
        response = _post(client, user, json={"room_id": "r101", "check_in": stay[0], "check_out": stay[1]})
        body = assert_problem(response, 422)
        assert body.get("detail") or body.get("errors"), body
    assert client.get("/api/v1/reservations", headers=user.auth).json()["items"] == []


def test_unknown_room_is_404(client: httpx.Client, user: User, stays: Stays) -> None:
    check_in, check_out = stays.take(1)

    response = _post(client, user, json={"room_id": "r999", "check_in": check_in, "check_out": check_out})

    assert_problem(response, 404)
    assert_problem(client.get("/api/v1/rooms/r999"), 404)
    availability = client.get(
        "/api/v1/availability", params={"room_id": "r999", "from": check_in, "to": check_out}
    )
    assert_problem(availability, 404)


def test_a_10_mb_body_is_413(client: httpx.Client, user: User) -> None:
    huge = b'{"room_id": "' + b"x" * (10 * 1024 * 1024) + b'"}'

    response = _post(client, user, content=huge)

    assert_problem(response, 413)
    signup = client.post("/api/v1/auth/signup", content=huge, headers={"Content-Type": "application/json"})
    assert_problem(signup, 413)


def test_missing_idempotency_key_is_400_and_unknown_fields_are_422(
    client: httpx.Client, user: User, stays: Stays
) -> None:
    check_in, check_out = stays.take(1)
    stay = {"room_id": "r101", "check_in": check_in, "check_out": check_out}

    assert_problem(client.post("/api/v1/reservations", headers=user.auth, json=stay), 400)
    assert_problem(client.patch("/api/v1/members/me", headers=user.auth, json={"status": "active"}), 422)
    assert_problem(client.patch("/api/v1/members/me", headers=user.auth, json={"display_name": 42}), 422)
    assert_problem(
        client.post(
            "/api/v1/auth/signup", json={"email": "not-an-email", "password": "x", "display_name": ""}
        ),
        422,
    )


def test_bad_queries_are_422(client: httpx.Client) -> None:
    for params in (
        {"room_id": "r101"},
        {"room_id": "r101", "from": "2030-01-05", "to": "2030-01-01"},
        {"room_id": "r101", "from": "yesterday", "to": "2030-01-01"},
        {"room_id": "r101", "from": "2030-01-01", "to": "2030-12-31"},  # over 90 nights
    ):
        assert_problem(client.get("/api/v1/availability", params=params), 422)
