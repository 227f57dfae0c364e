"""A dependency down: the immediate check fails fast with 503 + Retry-After, the dashboard
degrades instead of failing, and both recover once the service is back."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import httpx

from stack.runner import Stack

from .conftest import Mailbox, Stays, User, assert_problem, availability, eventually

# The gateway gives a request 25 s (GATEWAY_REQUEST_TIMEOUT_S) and one upstream attempt 10 s;
# with member unreachable, room must answer well within that: connection refused is immediate,
# retries back off briefly, and an open breaker fails fast.
FAIL_FAST_BUDGET_S = 4.0


def test_member_down_reservations_503_with_retry_after_dashboard_degraded_then_both_recover(
    client: httpx.Client, stack: Stack, new_member: Callable[..., User], stays: Stays
) -> None:
    user = new_member("faulty")
    stay = {"room_id": "r103", "check_in": "", "check_out": ""}
    stay["check_in"], stay["check_out"] = stays.take(1)
    key = "reserve-while-member-is-down"
    healthy = client.get("/api/v1/dashboard", headers=user.auth).json()
    assert healthy["degraded"] is False, healthy

    stack.stop_service("member")
    try:
        began = time.monotonic()
        refused = client.post("/api/v1/reservations", headers=user.headers(key), json=stay)
        took = time.monotonic() - began

        problem = assert_problem(refused, 503)
        assert int(refused.headers["Retry-After"]) >= 1, refused.headers
        assert took < FAIL_FAST_BUDGET_S, f"503 after {took:.2f} s"
        assert "member" in problem["detail"].lower(), problem

        # The member routes themselves: the gateway can't reach member either.
        profile = client.get("/api/v1/members/me", headers=user.auth)
        assert_problem(profile, 503)
        assert int(profile.headers["Retry-After"]) >= 1

        # Again, with the breaker open or not: still fast, still 503.
        began = time.monotonic()
        assert_problem(client.post("/api/v1/reservations", headers=user.headers(key), json=stay), 503)
        assert time.monotonic() - began < FAIL_FAST_BUDGET_S

        began = time.monotonic()
        dashboard = client.get("/api/v1/dashboard", headers=user.auth)
        took = time.monotonic() - began
        assert dashboard.status_code == 200, dashboard.text
        body = dashboard.json()
        assert body["degraded"] is True
        assert body["missing"] == ["profile"], body
        assert body["profile"] is None
        assert body["reservations"] == []
        assert body["licenses"] == []
        assert isinstance(body["notifications"], list)
        assert took < FAIL_FAST_BUDGET_S, f"dashboard after {took:.2f} s"
    finally:
        stack.start_service("member", migrate=False)

    # Back: the same Idempotency-Key now books (the 503 was not stored), the dashboard is whole.
    def reserved() -> httpx.Response | None:
        response = client.post("/api/v1/reservations", headers=user.headers(key), json=stay)
        return response if response.status_code == 201 else None

    made = eventually(reserved, "a reservation after member is back", within=20, interval=0.5)
    eventually(
        lambda: client.get("/api/v1/dashboard", headers=user.auth).json()["degraded"] is False,
        "a whole dashboard after member is back",
        within=20,
        interval=0.5,
    )
    dashboard = client.get("/api/v1/dashboard", headers=user.auth).json()
    assert dashboard["profile"]["member_id"] == user.user_id
    assert [r["reservation_id"] for r in dashboard["reservations"]] == [made.json()["reservation_id"]]


def test_auth_down_existing_tokens_keep_working_login_503_dashboard_without_licenses(
    client: httpx.Client, stack: Stack, new_member: Callable[..., User]
) -> None:
    user = new_member("keyholder")
    # Every service on the way has the signing key cached by now (JWKS, fetched on first use).
    assert client.get("/api/v1/reservations", headers=user.auth).status_code == 200
    assert client.get("/api/v1/dashboard", headers=user.auth).json()["degraded"] is False

    stack.stop_service("auth")
    try:
        assert client.get("/api/v1/reservations", headers=user.auth).status_code == 200
        assert client.get("/api/v1/members/me", headers=user.auth).status_code == 200
        body = client.get("/api/v1/dashboard", headers=user.auth).json()
        assert (body["degraded"], body["missing"], body["licenses"]) == (True, ["licenses"], None), body
        assert body["profile"]["member_id"] == user.user_id
        began = time.monotonic()
        login = client.post("/api/v1/auth/token", data={"username": user.email, "password": user.password})
        assert time.monotonic() - began < FAIL_FAST_BUDGET_S
        assert_problem(login, 503)
        assert int(login.headers["Retry-After"]) >= 1
    finally:
        stack.start_service("auth", migrate=False)

    eventually(
        lambda: (
            client.post(
                "/api/v1/auth/token", data={"username": user.email, "password": user.password}
            ).status_code
            == 200
        ),
        "login after auth is back",
        within=20,
        interval=0.5,
    )
    eventually(
        lambda: client.get("/api/v1/dashboard", headers=user.auth).json()["degraded"] is False,
        "a whole dashboard after auth is back",
        within=20,
        interval=0.5,
    )


def test_kafka_down_reservations_still_succeed_and_side_effects_follow_once_it_is_back(
    client: httpx.Client, stack: Stack, new_member: Callable[..., User], stays: Stays, mailbox: Mailbox
) -> None:
    user = new_member("patient")
    check_in, check_out = stays.take(1)

    stack.broker.stop()
    try:
        made = client.post(
            "/api/v1/reservations",
            headers=user.headers(),
            json={"room_id": "r104", "check_in": check_in, "check_out": check_out},
        )
        # The immediate checks are HTTP; the event waits in room's outbox, in the same commit.
        assert made.status_code == 201, made.text
        rid = made.json()["reservation_id"]
        night = availability(client, "r104", check_in, check_out)[0]
        assert (night["held"], night["booked"]) == (1, 0), night
        assert mailbox.to(user.email, "Reservation confirmed") == []
    finally:
        stack.broker.start(timeout=90)

    eventually(
        lambda: (
            [(n["held"], n["booked"]) for n in availability(client, "r104", check_in, check_out)] == [(0, 1)]
        ),
        "the hold confirmed once Kafka is back",
        within=60,
        interval=0.5,
    )
    mailbox.assert_exactly(1, user.email, "Reservation confirmed", contains=rid)
    eventually(
        lambda: (
            [i["ref_id"] for i in client.get("/api/v1/members/me/history", headers=user.auth).json()["items"]]
            == [rid]
        ),
        "the reservation in the member history",
        within=30,
        interval=0.5,
    )


# A frozen process accepts connections and never answers: only timeouts can help. The gateway
# gives a request 10 s; room waits ROOM_MEMBER_TIMEOUT_S (1 s) per attempt, a few attempts.
GATEWAY_DEADLINE_S = 10.0


def test_member_frozen_timeouts_cascade_and_the_answer_comes_before_the_gateway_deadline(
    client: httpx.Client, stack: Stack, new_member: Callable[..., User], stays: Stays
) -> None:
    user = new_member("waiting")
    check_in, check_out = stays.take(1)
    stay = {"room_id": "r101", "check_in": check_in, "check_out": check_out}
    pid = stack.pid("member")
    assert pid is not None

    os.killpg(pid, signal.SIGSTOP)  # the whole process group: uvicorn and its threads
    try:
        began = time.monotonic()
        slow = client.post("/api/v1/reservations", headers=user.headers(), json=stay)
        took = time.monotonic() - began
        assert_problem(slow, (503, 504))
        assert "Retry-After" in slow.headers
        assert took < GATEWAY_DEADLINE_S, f"answered after {took:.2f} s"

        began = time.monotonic()
        dashboard = client.get("/api/v1/dashboard", headers=user.auth)
        took = time.monotonic() - began
        assert dashboard.status_code == 200, dashboard.text
        assert (dashboard.json()["degraded"], dashboard.json()["missing"]) == (True, ["profile"])
        assert took < FAIL_FAST_BUDGET_S, f"dashboard after {took:.2f} s"
    finally:
        os.killpg(pid, signal.SIGCONT)

    def reserved() -> httpx.Response | None:
        response = client.post("/api/v1/reservations", headers=user.headers("after-the-thaw"), json=stay)
        return response if response.status_code == 201 else None

    eventually(reserved, "a reservation once member answers again", within=20, interval=0.5)
