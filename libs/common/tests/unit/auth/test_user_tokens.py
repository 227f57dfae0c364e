"""User access tokens: issue → JWKS → verify, key refresh rules, and the FastAPI dependencies."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI

from common.auth import (
    JwksKeyCache,
    UserPrincipal,
    UserTokenIssuer,
    UserTokenVerifier,
    current_user,
    require_role,
)
from common.errors import Unauthorized
from common.problems import install_problem_handlers

ISSUER, AUDIENCE = "http://auth:8001", "reservations"
JWKS_URL = "http://auth/.well-known/jwks.json"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeAuth:
    """Serves the JWKS of the issuers it holds, counts fetches, and can be taken down."""

    def __init__(self, *issuers: UserTokenIssuer) -> None:
        self.issuers = list(issuers)
        self.fetches = 0
        self.down = False

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        await asyncio.sleep(0.01)  # a real round trip, so concurrent requests overlap
        if self.down:
            raise httpx.ConnectError("auth is down", request=request)
        return httpx.Response(200, json={"keys": [k for i in self.issuers for k in i.jwks()["keys"]]})


def new_issuer(kid: str = "k1", **kw: Any) -> UserTokenIssuer:
    return UserTokenIssuer(ISSUER, AUDIENCE, Ed25519PrivateKey.generate(), kid=kid, **kw)


@pytest.fixture
def issuer_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def issuer(issuer_key: Ed25519PrivateKey) -> UserTokenIssuer:
    return UserTokenIssuer(ISSUER, AUDIENCE, issuer_key, kid="k1")


@pytest.fixture
def auth(issuer: UserTokenIssuer) -> FakeAuth:
    return FakeAuth(issuer)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cache(auth: FakeAuth, clock: FakeClock) -> AsyncIterator[JwksKeyCache]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(auth.handle)) as http:
        yield JwksKeyCache(JWKS_URL, http, min_refresh_interval=30, clock=clock)


@pytest.fixture
def verifier(cache: JwksKeyCache) -> UserTokenVerifier:
    return UserTokenVerifier(ISSUER, AUDIENCE, cache)


def test_jwks_publishes_only_the_public_key_with_kid_alg_and_use(issuer: UserTokenIssuer) -> None:
    (jwk,) = issuer.jwks()["keys"]

    assert jwk["kty"] == "OKP"
    assert jwk["crv"] == "Ed25519"
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == ("k1", "EdDSA", "sig")
    assert "d" not in jwk


def test_extra_claims_may_not_override_standard_ones(issuer: UserTokenIssuer) -> None:
    with pytest.raises(ValueError, match="roles"):
        issuer.issue("u-1", ["member"], extra={"roles": ["admin"]})


async def test_issue_then_verify_round_trip(issuer: UserTokenIssuer, verifier: UserTokenVerifier) -> None:
    token = issuer.issue("u-1", ["member"], extra={"tier": "gold"})

    principal = await verifier.verify(token)

    assert principal == UserPrincipal(user_id="u-1", roles=("member",), token=token)
    assert token not in repr(principal)
    assert jwt.decode(token, options={"verify_signature": False})["tier"] == "gold"


async def test_known_kid_is_verified_from_the_cache_without_fetching(
    issuer: UserTokenIssuer, verifier: UserTokenVerifier, auth: FakeAuth
) -> None:
    for _ in range(3):
        await verifier.verify(issuer.issue("u-1", ["member"]))

    assert auth.fetches == 1  # the first sight of kid k1


async def test_unknown_kid_triggers_exactly_one_refresh(
    issuer: UserTokenIssuer, verifier: UserTokenVerifier, auth: FakeAuth, clock: FakeClock
) -> None:
    await verifier.verify(issuer.issue("u-1", ["member"]))
    rotated = new_issuer(kid="k2")
    auth.issuers.append(rotated)
    clock.now += 30

    # Many requests with the new kid at once share one fetch.
    tokens = [rotated.issue(f"u-{n}", ["member"]) for n in range(5)]
    principals = await asyncio.gather(*(verifier.verify(t) for t in tokens))

    assert [p.user_id for p in principals] == [f"u-{n}" for n in range(5)]
    assert auth.fetches == 2


async def test_unknown_kids_refresh_at_most_once_per_interval(
    issuer: UserTokenIssuer,
    verifier: UserTokenVerifier,
    auth: FakeAuth,
    clock: FakeClock,
) -> None:
    await verifier.verify(issuer.issue("u-1", ["member"]))
    forged = new_issuer(kid="made-up")  # not published by auth

    for _ in range(3):
        with pytest.raises(Unauthorized, match="unknown key"):
            await verifier.verify(forged.issue("u-1", ["admin"]))
    assert auth.fetches == 1  # still within the interval after the first fetch

    clock.now += 30
    with pytest.raises(Unauthorized, match="unknown key"):
        await verifier.verify(forged.issue("u-1", ["admin"]))
    assert auth.fetches == 2


async def test_auth_down_keeps_verifying_with_cached_keys(
    issuer: UserTokenIssuer,
    verifier: UserTokenVerifier,
    cache: JwksKeyCache,
    auth: FakeAuth,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await verifier.verify(issuer.issue("u-1", ["member"]))
    auth.down = True
    clock.now += 60

    with caplog.at_level(logging.WARNING):
        assert await cache.refresh() is False  # the fetch fails ...
    assert "JWKS fetch failed" in caplog.text

    principal = await verifier.verify(issuer.issue("u-2", ["member"]))  # ... the old key still works
    assert principal.user_id == "u-2"
    clock.now += 60
    with pytest.raises(Unauthorized, match="unknown key"):  # a new kid can't be checked: 401, not 500
        await verifier.verify(new_issuer(kid="k2").issue("u-3", ["member"]))


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(503),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"keys": []}),
        httpx.Response(200, json={"keys": [{"kty": "RSA", "kid": "k1", "n": "x", "e": "AQAB"}]}),
    ],
    ids=["503", "not-json", "empty", "no-ed25519"],
)
async def test_a_bad_jwks_answer_keeps_the_old_keys(
    issuer: UserTokenIssuer, clock: FakeClock, response: httpx.Response
) -> None:
    good = FakeAuth(issuer)
    calls = 0

    async def first_good_then_bad(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return await good.handle(request) if calls == 1 else response

    transport = httpx.MockTransport(first_good_then_bad)
    async with httpx.AsyncClient(transport=transport) as http:
        cache = JwksKeyCache(JWKS_URL, http, min_refresh_interval=30, clock=clock)
        assert await cache.refresh() is True
        clock.now += 30

        assert await cache.refresh() is False
        assert await cache.get("k1") is not None


async def test_a_jwks_list_is_read_from_the_first_auth_instance_that_answers(
    issuer: UserTokenIssuer, clock: FakeClock
) -> None:
    good = FakeAuth(issuer)
    asked: list[str] = []

    async def first_down(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "auth-1":
            raise httpx.ConnectError("auth-1 is down", request=request)
        return await good.handle(request)

    urls = "http://auth-1/.well-known/jwks.json, dns+http://auth-2/.well-known/jwks.json"
    async with httpx.AsyncClient(transport=httpx.MockTransport(first_down)) as http:
        cache = JwksKeyCache(urls, http, clock=clock)
        assert await cache.get("k1") is not None
    assert asked == ["auth-1", "auth-2"]


async def test_private_keys_in_a_jwks_are_ignored(clock: FakeClock) -> None:
    private = jwt.algorithms.OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate(), as_dict=True)
    body = {"keys": [{**private, "kid": "leaked"}]}
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body))
    ) as http:
        cache = JwksKeyCache(JWKS_URL, http, clock=clock)

        assert await cache.get("leaked") is None


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ({"clock": lambda: time.time() - 3600}, "access token expired"),
        ({"audience": "another-system"}, "access token audience mismatch"),
        ({"issuer": "http://evil"}, "access token issuer mismatch"),
        ({"forged": True}, "access token signature invalid"),
    ],
    ids=["expired", "wrong-aud", "wrong-iss", "forged"],
)
async def test_bad_access_tokens_are_rejected(
    issuer_key: Ed25519PrivateKey, verifier: UserTokenVerifier, variant: dict[str, Any], reason: str
) -> None:
    # "forged": right kid, someone else's key.
    key = Ed25519PrivateKey.generate() if variant.pop("forged", False) else issuer_key
    settings: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **variant}
    token = UserTokenIssuer(private_key=key, kid="k1", **settings).issue("u-1", ["admin"])

    with pytest.raises(Unauthorized, match=reason):
        await verifier.verify(token)


def _signed(key: Ed25519PrivateKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k1"})


def _standard_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-1", "roles": ["member"], "iat": now, "exp": now + 60}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


# The changes, not the claims: a token is minted when its test runs, never at collection
# (exp = now + 60 would pass on a slow machine before the test starts).
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sub": None}, "access token missing claim 'sub'"),
        ({"exp": None}, "access token missing claim 'exp'"),
        ({"roles": "admin"}, "access token roles claim invalid"),
        ({"roles": [1]}, "access token roles claim invalid"),
    ],
    ids=["no-sub", "no-exp", "roles-string", "roles-not-strings"],
)
async def test_access_tokens_with_bad_claims_are_rejected(
    issuer_key: Ed25519PrivateKey, verifier: UserTokenVerifier, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Unauthorized, match=reason):
        await verifier.verify(_signed(issuer_key, _standard_claims(**changes)))


def _alg_none_token() -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","kid":"k1"}').decode()
    payload = jwt.utils.base64url_encode(json.dumps(_standard_claims(roles=["admin"])).encode()).decode()
    return f"{header}.{payload}."


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (_alg_none_token, "access token algorithm not allowed"),
        (
            lambda: jwt.encode(
                _standard_claims(), "a-guessed-secret-of-32-bytes!!!!", "HS256", {"kid": "k1"}
            ),
            "access token algorithm not allowed",
        ),
        (lambda: "garbage", "access token malformed"),
    ],
    ids=["alg-none", "hs256", "garbage"],
)
async def test_unsigned_hmac_and_garbage_access_tokens_are_rejected(
    verifier: UserTokenVerifier, make_token: Callable[[], str], reason: str
) -> None:
    with pytest.raises(Unauthorized, match=reason):
        await verifier.verify(make_token())


def user_app(verifier: UserTokenVerifier) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.user_tokens = verifier

    @app.get("/me")
    async def me(user: Annotated[UserPrincipal, Depends(current_user)]) -> dict[str, Any]:
        return {"user_id": user.user_id, "roles": list(user.roles)}

    @app.post("/admin/suspend", dependencies=[Depends(require_role("admin"))])
    async def suspend() -> dict[str, bool]:
        return {"suspended": True}

    return app


@pytest.fixture
async def client(verifier: UserTokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=user_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://member") as http:
        yield http


async def test_current_user_reads_the_bearer_token(
    client: httpx.AsyncClient, issuer: UserTokenIssuer
) -> None:
    token = issuer.issue("u-7", ["member"])

    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json() == {"user_id": "u-7", "roles": ["member"]}


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "bearer access token required"),
        ("Basic dXNlcjpwYXNz", "bearer access token required"),
        ("Bearer ", "bearer access token required"),
        ("Bearer not-a-jwt", "access token malformed"),
    ],
    ids=["none", "basic", "empty", "garbage"],
)
async def test_missing_or_bad_bearer_is_unauthorized(
    client: httpx.AsyncClient,
    assert_problem: Callable[..., Any],
    authorization: str | None,
    reason: str,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    response = await client.get("/me", headers=headers)

    assert_problem(response, 401, reason)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_expired_token_is_unauthorized_over_http(
    client: httpx.AsyncClient, issuer_key: Ed25519PrivateKey, assert_problem: Callable[..., Any]
) -> None:
    token = _signed(issuer_key, _standard_claims(iat=int(time.time()) - 3600, exp=int(time.time()) - 60))

    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})

    assert_problem(response, 401, "access token expired")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_member_token_on_an_admin_route_is_forbidden(
    client: httpx.AsyncClient, issuer: UserTokenIssuer, assert_problem: Callable[..., Any]
) -> None:
    token = issuer.issue("u-1", ["member"])

    response = await client.post("/admin/suspend", headers={"Authorization": f"Bearer {token}"})

    assert_problem(response, 403, "requires the 'admin' role")


async def test_admin_token_on_an_admin_route_is_allowed(
    client: httpx.AsyncClient, issuer: UserTokenIssuer
) -> None:
    token = issuer.issue("u-1", ["member", "admin"])

    response = await client.post("/admin/suspend", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200


async def test_admin_route_without_a_token_is_unauthorized_not_forbidden(
    client: httpx.AsyncClient, assert_problem: Callable[..., Any]
) -> None:
    assert_problem(await client.post("/admin/suspend"), 401, "bearer access token required")
