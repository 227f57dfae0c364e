"""Settings guard production against weak password hashing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from auth_service.settings import AuthSettings


def prod(**overrides: int) -> AuthSettings:
    # Every other production guard satisfied, so only the one under test can refuse.
    return AuthSettings.model_validate(
        {
            "env": "prod",
            "service_shared_secret": "a-real-secret-of-enough-length",
            "cursor_secret": "another-real-secret-of-enough-length",
            "allowed_hosts": ["auth.example"],
            **overrides,
        }
    )


def test_production_refuses_cheap_password_hashing() -> None:
    with pytest.raises(ValidationError, match="OWASP"):
        prod(password_hash_memory_kib=1024)
    with pytest.raises(ValidationError, match="OWASP"):
        prod(password_hash_time_cost=1)


def test_the_defaults_are_production_grade() -> None:
    settings = prod()
    assert settings.password_hash_memory_kib == 19456
    assert settings.password_hash_time_cost == 2
    assert settings.access_token_ttl_s == 900
