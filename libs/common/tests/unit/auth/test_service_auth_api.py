"""The acceptance matrix: an internal route of "member" that only "room" may call, over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, FastAPI

from common.auth import (
    SERVICE_NAME_HEADER,
    SERVICE_SECRET_HEADER,
    SERVICE_TOKEN_HEADER,
    ServiceAuthenticator,
    ServiceIdentity,
    ServiceTokenIssuer,
    UserTokenIssuer,
    build_service_auth,
    ensure_service_keypair,
    require_service,
)
from common.problems import install_problem_handlers

SECRET = "teaching-secret-0123456789abcdef"
ROUTE = "/internal/members/42"


def member_app(service_auth: ServiceAuthenticator) -> FastAPI:
    """A tiny "member" service: one route guarded per route, one per router."""
    app = FastAPI()
    install_problem_handlers(app)
    app.state.service_auth = service_auth

    @app.get(ROUTE)
    async def get_member(
        caller: Annotated[ServiceIdentity, Depends(require_service("room"))],
    ) -> dict[str, Any]:
        return {"member_id": 42, "caller": caller.caller}

    router = APIRouter(prefix="/internal/admin", dependencies=[Depends(require_service("room", "auth"))])

    @router.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(router)
    return app


@pytest.fixture
async def client(keys_dir: Path, room_key: Ed25519PrivateKey) -> AsyncIterator[httpx.AsyncClient]:
    app = member_app(build_service_auth("jwt", "member", keys_dir, None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://member") as http:
        yield http


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def hs256_with_public_key(claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    """The key-confusion attack: HMAC-sign with the (public!) key bytes as the secret."""
    secret = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = unsigned_token({"alg": "HS256", "typ": "JWT", "kid": "room"}, claims).rsplit(".", 1)[0]
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """Change claims in the payload but keep the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


async def test_valid_token_from_an_allowed_caller_reaches_the_handler(
    client: httpx.AsyncClient, room_key: Ed25519PrivateKey
) -> None:
    headers = {SERVICE_TOKEN_HEADER: ServiceTokenIssuer("room", room_key).token_for("member")}

    response = await client.get(ROUTE, headers=headers)

    assert response.status_code == 200
    assert response.json() == {"member_id": 42, "caller": "room"}


async def test_the_callers_own_auth_object_makes_the_headers(
    keys_dir: Path, room_key: Ed25519PrivateKey
) -> None:
    room_auth = build_service_auth("jwt", "room", keys_dir, None)
    app = member_app(build_service_auth("jwt", "member", keys_dir, None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://member") as http:
        response = await http.get(ROUTE, headers=room_auth.headers_for("member"))

    assert response.status_code == 200


async def test_router_level_allow_list_admits_each_named_caller(
    client: httpx.AsyncClient, room_key: Ed25519PrivateKey, auth_key: Ed25519PrivateKey
) -> None:
    for service, key in (("room", room_key), ("auth", auth_key)):
        headers = {SERVICE_TOKEN_HEADER: ServiceTokenIssuer(service, key).token_for("member")}
        response = await client.get("/internal/admin/ping", headers=headers)
        assert response.status_code == 200, service


async def test_valid_caller_not_on_the_allow_list_is_forbidden(
    client: httpx.AsyncClient, auth_key: Ed25519PrivateKey, assert_problem: Callable[..., Any]
) -> None:
    headers = {SERVICE_TOKEN_HEADER: ServiceTokenIssuer("auth", auth_key).token_for("member")}

    response = await client.get(ROUTE, headers=headers)

    assert_problem(response, 403, "service 'auth' may not call this route")


async def test_no_token_is_unauthorized(
    client: httpx.AsyncClient, assert_problem: Callable[..., Any]
) -> None:
    response = await client.get(ROUTE)

    body = assert_problem(response, 401, f"missing {SERVICE_TOKEN_HEADER} header")
    assert response.headers["www-authenticate"] == "ServiceToken"
    assert body["instance"] == ROUTE


async def test_user_access_token_in_authorization_is_unauthorized(
    client: httpx.AsyncClient, auth_key: Ed25519PrivateKey, assert_problem: Callable[..., Any]
) -> None:
    user_token = UserTokenIssuer("auth", "reservations", auth_key, kid="auth").issue("u-1", ["admin"])

    response = await client.get(ROUTE, headers={"Authorization": f"Bearer {user_token}"})

    assert_problem(response, 401, f"missing {SERVICE_TOKEN_HEADER} header")


@pytest.mark.parametrize(
    ("kid", "reason"),
    [
        # Even signed by auth's own service key with kid == iss, a user token is for another audience.
        ("auth", "audience mismatch"),
        # The usual case: auth's user-token key is no service's key.
        ("auth-user-key-1", "unknown service"),
    ],
)
async def test_user_access_token_in_the_service_token_header_is_unauthorized(
    client: httpx.AsyncClient,
    auth_key: Ed25519PrivateKey,
    assert_problem: Callable[..., Any],
    kid: str,
    reason: str,
) -> None:
    user_token = UserTokenIssuer("auth", "reservations", auth_key, kid=kid).issue("u-1", ["admin"])

    response = await client.get(ROUTE, headers={SERVICE_TOKEN_HEADER: user_token})

    assert_problem(response, 401, reason)


@dataclass(frozen=True)
class Kit:
    """What the bad-token builders below need."""

    room_key: Ed25519PrivateKey
    sign: Callable[..., str]
    claims: Callable[..., dict[str, Any]]
    elsewhere: Path  # a keys dir the callee does not read


def _expired(kit: Kit) -> str:
    return ServiceTokenIssuer("room", kit.room_key, clock=lambda: time.time() - 120).token_for("member")


def _wrong_audience(kit: Kit) -> str:
    return ServiceTokenIssuer("room", kit.room_key).token_for("inventory")


def _wrong_issuer(kit: Kit) -> str:
    # Signed by room's key, kid "room", but claiming to be auth: a key speaks only for its owner.
    return kit.sign(kit.claims(iss="auth"), kit.room_key, kid="room")


def _unknown_service(kit: Kit) -> str:
    return kit.sign(kit.claims(iss="ghost"), ensure_service_keypair(kit.elsewhere, "ghost"))


def _impostor(kit: Kit) -> str:
    # Claims to be room, signed by a key that is not room's.
    return kit.sign(kit.claims(), ensure_service_keypair(kit.elsewhere, "room"))


def _alg_none(kit: Kit) -> str:
    return unsigned_token({"alg": "none", "typ": "JWT", "kid": "room"}, kit.claims())


def _key_confusion(kit: Kit) -> str:
    return hs256_with_public_key(kit.claims(), kit.room_key)


def _tampered(kit: Kit) -> str:
    token = ServiceTokenIssuer("room", kit.room_key).token_for("member")
    return tampered(token, exp=int(time.time()) + 3600)


def _too_long_lived(kit: Kit) -> str:
    now = int(time.time())
    return kit.sign(kit.claims(iat=now, exp=now + 61), kit.room_key)


def _no_jti(kit: Kit) -> str:
    return kit.sign(kit.claims(jti=None), kit.room_key)


def _garbage(kit: Kit) -> str:
    return "not-a-jwt"


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (_expired, "service token expired"),
        (_wrong_audience, "service token audience mismatch"),
        (_wrong_issuer, "service token issuer mismatch"),
        (_unknown_service, "service token from unknown service"),
        (_impostor, "service token signature invalid"),
        (_alg_none, "service token algorithm not allowed"),
        (_key_confusion, "service token algorithm not allowed"),
        (_tampered, "service token signature invalid"),
        (_too_long_lived, "service token lifetime exceeds 60 s"),
        (_no_jti, "service token missing claim 'jti'"),
        (_garbage, "service token malformed"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
async def test_bad_service_tokens_are_unauthorized(
    client: httpx.AsyncClient,
    room_key: Ed25519PrivateKey,
    sign: Callable[..., str],
    service_claims: Callable[..., dict[str, Any]],
    tmp_path: Path,
    assert_problem: Callable[..., Any],
    make_token: Callable[[Kit], str],
    reason: str,
) -> None:
    token = make_token(Kit(room_key, sign, service_claims, tmp_path / "elsewhere"))

    response = await client.get(ROUTE, headers={SERVICE_TOKEN_HEADER: token})

    body = assert_problem(response, 401, reason)
    assert body["detail"] == reason
    assert token not in response.text


@pytest.fixture
async def secret_client() -> AsyncIterator[httpx.AsyncClient]:
    app = member_app(build_service_auth("shared-secret", "member", Path("unused"), SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://member") as http:
        yield http


async def test_shared_secret_right_secret_is_accepted(secret_client: httpx.AsyncClient) -> None:
    room_auth = build_service_auth("shared-secret", "room", Path("unused"), SECRET)

    response = await secret_client.get(ROUTE, headers=room_auth.headers_for("member"))

    assert response.status_code == 200
    assert response.json()["caller"] == "room"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({SERVICE_NAME_HEADER: "room", SERVICE_SECRET_HEADER: "x" + SECRET[1:]}, "service secret invalid"),
        ({SERVICE_NAME_HEADER: "room", SERVICE_SECRET_HEADER: SECRET[:-1]}, "service secret invalid"),
        ({SERVICE_NAME_HEADER: "room", SERVICE_SECRET_HEADER: "caf\u00e9"}, "service secret invalid"),
        ({SERVICE_NAME_HEADER: "room"}, "missing X-Service-Secret"),
        ({SERVICE_SECRET_HEADER: SECRET}, "missing X-Service-Secret or X-Service-Name"),
        ({}, "missing X-Service-Secret"),
    ],
    ids=["wrong", "truncated", "non-ascii", "no-secret", "no-name", "nothing"],
)
async def test_shared_secret_wrong_or_missing_is_unauthorized(
    secret_client: httpx.AsyncClient,
    assert_problem: Callable[..., Any],
    headers: dict[str, str],
    reason: str,
) -> None:
    # Bytes on the wire, so that a non-ASCII value reaches the server as it would from a client.
    encoded = {k.encode(): v.encode("latin-1") for k, v in headers.items()}

    response = await secret_client.get(ROUTE, headers=encoded)

    assert_problem(response, 401, reason)
    assert response.headers["www-authenticate"] == "ServiceSecret"


async def test_shared_secret_caller_not_on_the_allow_list_is_forbidden(
    secret_client: httpx.AsyncClient, assert_problem: Callable[..., Any]
) -> None:
    response = await secret_client.get(
        ROUTE, headers={SERVICE_NAME_HEADER: "auth", SERVICE_SECRET_HEADER: SECRET}
    )

    assert_problem(response, 403, "may not call this route")


async def test_failed_verifications_never_log_the_token_or_the_secret(
    client: httpx.AsyncClient,
    secret_client: httpx.AsyncClient,
    room_key: Ed25519PrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = ServiceTokenIssuer("room", room_key).token_for("member")
    bad_tokens = [tampered(good, aud="inventory"), hs256_with_public_key({"iss": "room"}, room_key)]
    wrong_secret = "not-the-secret-but-still-secret"

    with caplog.at_level(logging.DEBUG):
        for token in bad_tokens:
            assert (await client.get(ROUTE, headers={SERVICE_TOKEN_HEADER: token})).status_code == 401
        for secret in (SECRET, wrong_secret):  # the right secret from the wrong caller → 403
            headers = {SERVICE_NAME_HEADER: "auth", SERVICE_SECRET_HEADER: secret}
            assert (await secret_client.get(ROUTE, headers=headers)).status_code in (401, 403)

    logged = "\n".join(f"{r.getMessage()} {r.args} {r.exc_text} {vars(r)}" for r in caplog.records)
    for secret in [*bad_tokens, good, SECRET, wrong_secret]:
        assert secret not in logged
    for part in (p for t in bad_tokens for p in t.split(".")):
        assert part not in logged
