"""Service token issuer and verifier, tested directly (the HTTP matrix is in test_service_auth_api)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.auth import (
    SERVICE_TOKEN_HEADER,
    JwtServiceAuth,
    PublicKeyStore,
    ServiceIdentity,
    ServiceTokenIssuer,
    ServiceTokenVerifier,
    SharedSecretServiceAuth,
    build_service_auth,
    ensure_service_keypair,
)
from common.errors import Unauthorized


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("ttl", [0, -1, 61, 3600])
def test_issuer_refuses_lifetimes_outside_1_to_60_seconds(room_key: Ed25519PrivateKey, ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        ServiceTokenIssuer("room", room_key, ttl_seconds=ttl)


def test_token_carries_the_required_claims_and_kid(room_key: Ed25519PrivateKey) -> None:
    token = ServiceTokenIssuer("room", room_key, ttl_seconds=30).token_for("member")

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, room_key.public_key(), algorithms=["EdDSA"], audience="member")
    assert header["alg"] == "EdDSA"
    assert header["kid"] == "room"
    assert claims["iss"] == "room"
    assert claims["aud"] == "member"
    assert claims["exp"] - claims["iat"] == 30
    assert uuid.UUID(claims["jti"]).version == 4


def test_every_call_gets_a_new_token(room_key: Ed25519PrivateKey) -> None:
    # The callee accepts a jti once: reusing a token (even within its life) would be refused.
    clock = FakeClock()
    issuer = ServiceTokenIssuer("room", room_key, ttl_seconds=30, clock=clock)

    first, second = issuer.token_for("member"), issuer.token_for("member")

    jti = [jwt.decode(t, options={"verify_signature": False})["jti"] for t in (first, second)]
    assert first != second
    assert jti[0] != jti[1]


def test_each_audience_gets_its_own_token(room_key: Ed25519PrivateKey) -> None:
    issuer = ServiceTokenIssuer("room", room_key)

    member, inventory = issuer.token_for("member"), issuer.token_for("inventory")

    assert jwt.decode(member, options={"verify_signature": False})["aud"] == "member"
    assert jwt.decode(inventory, options={"verify_signature": False})["aud"] == "inventory"


def test_verifier_returns_the_caller_and_token_id(keys_dir: Path, room_key: Ed25519PrivateKey) -> None:
    token = ServiceTokenIssuer("room", room_key).token_for("member")

    identity = ServiceTokenVerifier("member", PublicKeyStore(keys_dir)).verify(token)

    assert identity == ServiceIdentity(
        caller="room", jti=jwt.decode(token, options={"verify_signature": False})["jti"]
    )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"jti": None}, "missing claim 'jti'"),
        ({"iat": None}, "missing claim 'iat'"),
        ({"aud": ["member", "inventory"]}, "audience mismatch"),  # one token, one callee
        ({"iat": 10**10, "exp": 10**10 + 30}, "not yet valid"),
    ],
)
def test_verifier_rejects_bad_claims_with_a_safe_reason(
    keys_dir: Path,
    room_key: Ed25519PrivateKey,
    sign: Callable[..., str],
    service_claims: Callable[..., dict[str, Any]],
    overrides: dict[str, Any],
    reason: str,
) -> None:
    token = sign(service_claims(**overrides), room_key)

    with pytest.raises(Unauthorized, match=reason) as caught:
        ServiceTokenVerifier("member", PublicKeyStore(keys_dir)).verify(token)
    assert token not in caught.value.detail
    assert caught.value.__cause__ is None


def test_a_caller_that_restarted_with_a_new_key_is_accepted_after_a_reload(
    keys_dir: Path, room_key: Ed25519PrivateKey
) -> None:
    clock = FakeClock()
    verifier = ServiceTokenVerifier("member", PublicKeyStore(keys_dir, clock=clock))
    verifier.verify(ServiceTokenIssuer("room", room_key).token_for("member"))  # old key cached

    for suffix in (".key", ".pub"):
        (keys_dir / f"room{suffix}").unlink()
    new_key = ensure_service_keypair(keys_dir, "room")
    token = ServiceTokenIssuer("room", new_key).token_for("member")

    with pytest.raises(Unauthorized, match="signature invalid"):
        verifier.verify(token)  # within the reload interval: still the old key
    clock.now += 1
    assert verifier.verify(token).caller == "room"


def test_factory_builds_jwt_auth_and_creates_the_key_pair(keys_dir: Path) -> None:
    auth = build_service_auth("jwt", "member", keys_dir, None)

    assert isinstance(auth, JwtServiceAuth)
    assert (keys_dir / "member.key").exists()
    assert set(auth.headers_for("room")) == {SERVICE_TOKEN_HEADER}


def test_factory_builds_shared_secret_auth_only_with_a_secret(keys_dir: Path) -> None:
    auth = build_service_auth("shared-secret", "member", keys_dir, "s" * 32)

    assert isinstance(auth, SharedSecretServiceAuth)
    assert not keys_dir.exists()  # no keys in shared-secret mode
    with pytest.raises(ValueError, match="needs a shared secret"):
        build_service_auth("shared-secret", "member", keys_dir, None)
    with pytest.raises(ValueError, match="at least 16"):
        build_service_auth("shared-secret", "member", keys_dir, "short")
    with pytest.raises(ValueError, match="unknown service auth mode"):
        build_service_auth("basic", "member", keys_dir, None)  # type: ignore[arg-type]
