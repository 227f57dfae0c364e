"""Sign-up, login, access tokens and their JWKS, refresh-token rotation: over HTTP, real DB and Kafka."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from sqlalchemy import func, select, update

from auth_service.adapters.orm import RefreshToken, messaging
from auth_service.adapters.signing_keys import jwk_thumbprint
from auth_service.settings import AuthSettings
from common.auth import JwksKeyCache, UserTokenVerifier
from common.db import Database
from common.errors import PROBLEM_JSON

from .conftest import PASSWORD, AuthApi, bearer, wait_for_event

pytestmark = pytest.mark.kafka


async def test_signup_stores_the_user_and_publishes_user_registered(
    api: AuthApi, settings: AuthSettings, kafka_bootstrap: str
) -> None:
    response = await api.signup(email="  Ann.Lee@Example.COM ", name="Ann Lee")

    assert response.status_code == 201, response.text
    user = response.json()
    assert user == {
        "user_id": user["user_id"],
        "email": "ann.lee@example.com",
        "display_name": "Ann Lee",
        "roles": ["member"],
    }
    envelope, payload = await asyncio.to_thread(
        wait_for_event, kafka_bootstrap, "UserRegistered", "auth.users", user["user_id"]
    )
    assert envelope.producer == "auth"
    assert payload["user_id"] == user["user_id"]
    assert payload["email"] == "ann.lee@example.com"
    assert payload["display_name"] == "Ann Lee"
    assert payload["registered_at"].tzinfo is not None


async def test_an_email_is_taken_whatever_its_case(api: AuthApi, settings: AuthSettings) -> None:
    assert (await api.signup(email="bob@example.com")).status_code == 201

    taken = await api.signup(email="BOB@Example.com")

    assert taken.status_code == 409
    assert taken.headers["content-type"].startswith(PROBLEM_JSON)
    db = Database(settings.database_url)
    try:  # the refused sign-up left no event behind
        with db.read() as session:
            events = session.scalar(
                select(func.count())
                .select_from(messaging.outbox)
                .where(messaging.outbox.c.event_type == "UserRegistered")
            )
        assert events == 1
    finally:
        db.dispose()


BAD_SIGN_UPS: list[tuple[dict[str, object], str]] = [
    ({"email": "not-an-email", "password": PASSWORD, "display_name": "A"}, "email"),
    ({"email": "a@example.com", "password": "short", "display_name": "A"}, "password"),
    ({"email": "a@example.com", "password": "x" * 129, "display_name": "A"}, "password"),
    ({"email": "a@example.com", "password": 12345678, "display_name": "A"}, "password"),
    ({"email": "a@example.com", "password": PASSWORD, "display_name": "  "}, "display_name"),
    ({"email": "a@example.com", "password": PASSWORD, "display_name": "A", "role": "admin"}, "role"),
]


async def test_bad_sign_ups_are_422_naming_the_field(api: AuthApi) -> None:
    for body, field in BAD_SIGN_UPS:
        response = await api.client.post("/api/v1/auth/signup", json=body)

        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert field in response.text, body


async def test_malformed_json_is_400(api: AuthApi) -> None:
    response = await api.client.post(
        "/api/v1/auth/signup", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_login_issues_an_access_token_the_jwks_verifies(api: AuthApi) -> None:
    user_id = (await api.signup(email="carol@example.com")).json()["user_id"]

    response = await api.login("Carol@Example.com")

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"]
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    [jwk] = jwks["keys"]
    assert "d" not in jwk  # public material only
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["kid"] == jwk["kid"] == jwk_thumbprint(jwt.PyJWK(jwk).key)
    claims = jwt.decode(
        tokens["access_token"],
        jwt.PyJWK(jwk).key,
        algorithms=["EdDSA"],
        audience="reservations",
        issuer="auth",
    )
    assert claims["sub"] == user_id
    assert claims["roles"] == ["member"]
    assert claims["exp"] - claims["iat"] == 900
    # What the gateway and every service do: fetch the JWKS over HTTP, then verify locally.
    verifier = UserTokenVerifier(
        "auth", "reservations", JwksKeyCache("http://service/.well-known/jwks.json", http=api.client)
    )
    principal = await verifier.verify(tokens["access_token"])
    assert (principal.user_id, principal.roles) == (user_id, ("member",))


async def test_bad_credentials_are_401_with_one_answer_for_unknown_email_and_wrong_password(
    api: AuthApi,
) -> None:
    await api.signup(email="dave@example.com")

    wrong_password = await api.login("dave@example.com", "not the password")
    unknown_email = await api.login("nobody@example.com", "not the password")
    not_an_email = await api.login("nobody", "not the password")

    for response in (wrong_password, unknown_email, not_an_email):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"] == not_an_email.json()["detail"]
    missing_field = await api.client.post("/api/v1/auth/token", data={"username": "dave@example.com"})
    assert missing_field.status_code == 422


async def test_refresh_rotates_and_a_reused_token_revokes_the_whole_family(api: AuthApi) -> None:
    user = await api.new_user()
    first = (await api.login(user.email)).json()

    second = await api.refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    third = await api.refresh(second.json()["refresh_token"])
    assert third.status_code == 200, third.text
    newest = third.json()
    assert len({first["refresh_token"], second.json()["refresh_token"], newest["refresh_token"]}) == 3
    me = await api.client.get("/api/v1/licenses", headers=bearer(newest["access_token"]))
    assert me.status_code == 200

    replayed = await api.refresh(first["refresh_token"])  # a thief (or the victim) replays it
    assert replayed.status_code == 401
    # The family is gone: even the newest token, never used, is refused now.
    assert (await api.refresh(newest["refresh_token"])).status_code == 401
    # Other sessions (families) of the same user are untouched.
    other = (await api.login(user.email)).json()
    assert (await api.refresh(other["refresh_token"])).status_code == 200


async def test_unknown_and_expired_refresh_tokens_are_401(api: AuthApi, settings: AuthSettings) -> None:
    user = await api.new_user()
    tokens = (await api.login(user.email)).json()
    assert (await api.refresh("not-a-token")).status_code == 401
    assert (await api.client.post("/api/v1/auth/refresh", json={})).status_code == 422

    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            session.execute(update(RefreshToken).values(expires_at=RefreshToken.issued_at))
    finally:
        db.dispose()

    assert (await api.refresh(tokens["refresh_token"])).status_code == 401
