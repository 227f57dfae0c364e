"""Fixtures for the auth tests: a keys dir, callers' keys, token crafting, problem checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.auth import ensure_service_keypair
from common.testing.problems import assert_problem as common_assert_problem


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def room_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The allowed caller's key, published in the shared keys dir."""
    return ensure_service_keypair(keys_dir, "room")


@pytest.fixture
def auth_key(keys_dir: Path) -> Ed25519PrivateKey:
    """A known service that is not on the test route's allow-list."""
    return ensure_service_keypair(keys_dir, "auth")


@pytest.fixture
def sign() -> Callable[..., str]:
    """Sign arbitrary claims with EdDSA (kid defaults to the iss claim), for hand-made tokens."""

    def _sign(claims: dict[str, Any], key: Ed25519PrivateKey, kid: str | None = None) -> str:
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid or claims["iss"]})

    return _sign


@pytest.fixture
def service_claims() -> Callable[..., dict[str, Any]]:
    """Valid room → member claims, with overrides (None removes a claim)."""

    def _claims(**overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": "room", "aud": "member", "iat": now, "exp": now + 30, "jti": "j-1"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    return _claims


@pytest.fixture
def assert_problem() -> Callable[..., dict[str, Any]]:
    """Check a response is an RFC 9457 problem with this status and a detail containing text."""

    def _check(response: httpx.Response, status: int, detail: str = "") -> dict[str, Any]:
        body = common_assert_problem(response, status, detail)
        if status == 401:
            assert response.headers["www-authenticate"]
        return body

    return _check
