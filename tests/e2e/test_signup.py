"""Flow 1 and 2: sign-up (event-carried state) and login."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .conftest import Mailbox, User, eventually


def test_signup_then_login_gives_a_member_profile_and_a_welcome_mail_within_10_s(
    client: httpx.Client, signup_and_login: Callable[..., User], mailbox: Mailbox
) -> None:
    user = signup_and_login("ada")

    def profile() -> dict[str, object] | None:
        response = client.get("/api/v1/members/me", headers=user.auth)
        return response.json() if response.status_code == 200 else None

    found = eventually(profile, "the member profile created from UserRegistered", within=10)
    assert found["member_id"] == user.user_id
    assert found["email"] == user.email
    assert found["display_name"] == user.display_name
    assert found["status"] == "active"
    assert found["version"] == 1

    [welcome] = mailbox.wait_for(user.email, "Welcome", within=10)
    assert welcome["to"] == [user.email]
    assert user.display_name in welcome["body"]


def test_signup_twice_with_the_same_email_in_another_case_is_409(
    client: httpx.Client, signup_and_login: Callable[..., User]
) -> None:
    user = signup_and_login("bob")
    again = client.post(
        "/api/v1/auth/signup",
        json={"email": user.email.upper(), "password": "another-password", "display_name": "Bob 2"},
    )
    assert again.status_code == 409, again.text
    assert again.headers["content-type"].startswith("application/problem+json")


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(
    client: httpx.Client, signup_and_login: Callable[..., User]
) -> None:
    user = signup_and_login("cy")
    wrong = client.post("/api/v1/auth/token", data={"username": user.email, "password": "not-the-password"})
    unknown = client.post(
        "/api/v1/auth/token", data={"username": "nobody-" + user.email, "password": "not-the-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(
    client: httpx.Client, signup_and_login: Callable[..., User]
) -> None:
    user = signup_and_login("rita")
    tokens = client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": user.password}
    ).json()

    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    me = client.get("/api/v1/reservations", headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert me.status_code == 200

    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    # The whole family is revoked: the token handed out by the rotation is spent too.
    after = client.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert after.status_code == 401
