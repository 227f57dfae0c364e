"""What the gateway refuses itself: no or bad tokens, unknown and internal routes, floods, huge bodies."""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.auth import UserTokenIssuer


def _no_calls(upstreams) -> bool:
    """True when no upstream got anything but the JWKS fetch."""
    return all(s.path == "/.well-known/jwks.json" for stub in upstreams.values() for s in stub.seen)


PUBLIC = [
    ("POST", "/api/v1/auth/signup"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/r101"),
    ("GET", "/api/v1/availability"),
]
PROTECTED = [
    ("GET", "/api/v1/members/me"),
    ("POST", "/api/v1/reservations"),
    ("GET", "/api/v1/licenses"),
    ("POST", "/api/v1/licenses"),
    ("POST", "/api/v1/admin/members/m1/suspend"),
    ("GET", "/api/v1/notifications"),
    ("GET", "/api/v1/dashboard"),
]


async def test_public_routes_need_no_token(client):
    for method, path in PUBLIC:
        response = await client.request(method, path)
        assert response.status_code == 200, (method, path, response.text)


async def test_other_routes_answer_401_at_the_gateway_without_a_token(client, upstreams):
    for method, path in PROTECTED:
        response = await client.request(method, path)

        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["status"] == 401
    assert _no_calls(upstreams)


def _foreign_token() -> str:
    issuer = UserTokenIssuer("auth", "reservations", Ed25519PrivateKey.generate(), kid="test-key")
    return issuer.issue("u1", ["member"])


async def test_bad_tokens_are_refused_at_the_gateway(client, upstreams):
    for authorization in (
        "Bearer not-a-jwt",
        "Bearer " + jwt.encode({"sub": "u1"}, key=None, algorithm="none"),
        "Bearer " + _foreign_token(),  # a known kid, another key: forged
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ):
        response = await client.get("/api/v1/members/me", headers={"Authorization": authorization})

        assert response.status_code == 401, authorization
        assert response.headers["content-type"] == "application/problem+json"
    assert _no_calls(upstreams)


async def test_expired_and_wrong_audience_tokens_are_refused(client, users, upstreams):
    key = Ed25519PrivateKey.generate()
    hour_ago = UserTokenIssuer("auth", "reservations", key, kid="k2", clock=lambda: time.time() - 3600)
    elsewhere = UserTokenIssuer("auth", "another-api", key, kid="k2")
    jwks = {"keys": users.issuer.jwks()["keys"] + hour_ago.jwks()["keys"]}
    upstreams["auth"].answer("GET", "/.well-known/jwks.json", (200, jwks))

    for token in (hour_ago.issue("u1", ["member"]), elsewhere.issue("u1", ["member"])):
        response = await client.get("/api/v1/members/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert _no_calls(upstreams)
    # The same key signing a valid token is accepted: the refusals above were about exp and aud.
    valid = UserTokenIssuer("auth", "reservations", key, kid="k2").issue("u1", ["member"])
    ok = await client.get("/api/v1/members/me", headers={"Authorization": f"Bearer {valid}"})
    assert ok.status_code == 200


async def test_unknown_and_internal_routes_never_reach_a_service(client, users, upstreams):
    for method, path, status in [
        ("GET", "/internal/members/m1", 404),
        ("POST", "/internal/holds", 404),
        ("DELETE", "/internal/holds/r1", 404),
        ("GET", "/internal/users/u1", 404),
        ("GET", "/api/v1/nothing-here", 404),
        ("GET", "/api/v2/rooms", 404),
        ("GET", "/api/v1/reservations/%2E%2E%2F%2E%2E%2F%2E%2E%2Finternal%2Fmembers%2Fm1", 404),
        ("PUT", "/api/v1/rooms", 405),
        ("DELETE", "/api/v1/licenses", 405),
    ]:
        response = await client.request(method, path, headers=users.headers("u1"))

        assert response.status_code == status, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
    assert _no_calls(upstreams)


async def test_rate_limit_per_user_then_per_ip(gateway_with, users):
    async with (
        gateway_with(rate_limit="3/minute") as gw,
        gw.client("198.51.100.1") as one,
        gw.client("198.51.100.2") as other,
    ):
        alice, bob = users.headers("alice"), users.headers("bob")
        for _ in range(3):
            assert (await one.get("/api/v1/reservations", headers=alice)).status_code == 200

        refused = await one.get("/api/v1/reservations", headers=alice)
        # Alice is counted as Alice wherever she calls from; Bob on the same IP has his own count.
        from_elsewhere = await other.get("/api/v1/reservations", headers=alice)
        bob_same_ip = await one.get("/api/v1/reservations", headers=bob)

        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert from_elsewhere.status_code == 429
        assert bob_same_ip.status_code == 200

        # Anonymous callers are counted per IP; a bad token doesn't earn a fresh allowance.
        for _ in range(3):
            assert (await one.get("/api/v1/rooms")).status_code == 200
        assert (await one.get("/api/v1/rooms")).status_code == 429
        garbage = await one.get("/api/v1/members/me", headers={"Authorization": "Bearer junk"})
        assert garbage.status_code == 429
        assert (await other.get("/api/v1/rooms")).status_code == 200


async def test_rate_limited_requests_do_not_reach_services(gateway_with, users, upstreams):
    async with gateway_with(rate_limit="1/minute") as gw, gw.client() as client:
        headers = users.headers("carol")
        assert (await client.get("/api/v1/reservations", headers=headers)).status_code == 200
        assert (await client.get("/api/v1/reservations", headers=headers)).status_code == 429

    assert len(upstreams["room"].requests("/api/v1/reservations")) == 1


async def test_body_over_the_limit_is_413(client, users, upstreams):
    ten_mb = b"{" + b" " * (10 * 1024 * 1024) + b"}"

    response = await client.post(
        "/api/v1/reservations",
        content=ten_mb,
        headers={**users.headers("u1"), "Idempotency-Key": "k", "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert not upstreams["room"].requests("/api/v1/reservations")


async def test_streamed_body_over_the_limit_is_413(client, users, upstreams):
    async def chunks():
        for _ in range(11):
            yield b" " * (1024 * 1024)

    response = await client.post(
        "/api/v1/reservations",
        content=chunks(),
        headers={**users.headers("u1"), "Idempotency-Key": "k", "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert not upstreams["room"].requests("/api/v1/reservations")
