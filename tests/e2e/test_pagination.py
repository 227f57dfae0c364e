"""Paged lists and the admin's mail re-send, through the gateway."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .conftest import Mailbox, Stays, User, assert_problem, eventually


def test_my_reservations_come_in_pages_and_a_cursor_is_only_good_for_its_owner(
    client: httpx.Client, new_member: Callable[..., User], stays: Stays
) -> None:
    user, other = new_member("pager"), new_member("snoop")
    check_in, check_out = stays.take(1)
    made = []
    for room_id in ("r101", "r102", "r103"):  # one night, three rooms: few nights used
        response = client.post(
            "/api/v1/reservations",
            headers=user.headers(),
            json={"room_id": room_id, "check_in": check_in, "check_out": check_out},
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["reservation_id"])

    first = client.get("/api/v1/reservations", params={"limit": 2}, headers=user.auth).json()
    assert first["next_cursor"]
    second = client.get(
        "/api/v1/reservations", params={"limit": 2, "cursor": first["next_cursor"]}, headers=user.auth
    ).json()
    assert second["next_cursor"] is None
    assert [r["reservation_id"] for r in first["items"] + second["items"]] == made[::-1]

    # The gateway passes the query on; the service refuses what is not a page of the caller's.
    assert_problem(
        client.get("/api/v1/reservations", params={"cursor": first["next_cursor"]}, headers=other.auth),
        422,
    )
    assert_problem(client.get("/api/v1/reservations", params={"limit": 101}, headers=user.auth), 422)
    history = eventually(
        lambda: (
            (h := client.get("/api/v1/members/me/history", params={"limit": 2}, headers=user.auth).json())
            and h["next_cursor"]
            and h
        ),
        "a history longer than one page",
        within=15,
    )
    assert len(history["items"]) == 2


def test_an_admin_resends_a_mail_with_the_same_message_id(
    client: httpx.Client, new_member: Callable[..., User], admin: dict[str, str], mailbox: Mailbox
) -> None:
    user = new_member("resent")
    [welcome] = mailbox.wait_for(user.email, "Welcome")

    def sent() -> dict[str, object] | None:
        items = client.get("/api/v1/notifications", headers=user.auth).json()["items"]
        return next((n for n in items if n["event_type"] == "UserRegistered" and n["status"] == "sent"), None)

    notification = eventually(sent, "the welcome mail marked sent", within=15)
    path = f"/api/v1/notifications/{notification['notification_id']}/resend"
    assert_problem(client.post(path, headers=user.auth), 403)  # the owner is no admin
    assert_problem(client.post("/api/v1/notifications/nope/resend", headers=admin), 404)
    queued = client.post(path, headers=admin)
    assert queued.status_code == 202, queued.text

    first, again = mailbox.wait_for(user.email, "Welcome", count=2)
    assert (
        first["headers"]["Message-ID"] == welcome["headers"]["Message-ID"] == again["headers"]["Message-ID"]
    )
