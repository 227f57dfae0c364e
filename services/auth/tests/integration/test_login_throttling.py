"""Login throttling over HTTP, on auth's own port: 429 + Retry-After, keyed on the real client.

The gateway tells auth the client's address (X-Client-Address); auth believes it only on a
request that carries the gateway's service token.
"""

from __future__ import annotations

import httpx
import pytest

from auth_service.settings import AuthSettings
from common.auth import CLIENT_ADDRESS_HEADER, ServiceAuthenticator, build_service_auth

from .conftest import PASSWORD, AuthApi

pytestmark = pytest.mark.kafka

WRONG = "not the password"


@pytest.fixture
def gateway(settings: AuthSettings) -> ServiceAuthenticator:
    """The gateway's service auth, its key published before auth starts."""
    return build_service_auth("jwt", "gateway", settings.service_keys_dir, None)


async def login(
    api: AuthApi, email: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await api.client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}, headers=headers or {}
    )


async def test_failed_logins_are_throttled_then_even_the_right_password_waits(api: AuthApi) -> None:
    user = await api.new_user()
    for _ in range(5):
        assert (await login(api, user.email, WRONG)).status_code == 401

    throttled = await login(api, user.email, PASSWORD)

    assert throttled.status_code == 429, throttled.text
    assert throttled.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(throttled.headers["retry-after"]) <= 300
    assert throttled.json()["status"] == 429
    assert "access_token" not in throttled.text


async def test_a_forged_client_address_from_a_direct_caller_is_ignored(api: AuthApi) -> None:
    user = await api.new_user()
    for n in range(5):
        await login(api, user.email, WRONG, headers={CLIENT_ADDRESS_HEADER: f"203.0.113.{n}"})

    forged = await login(api, user.email, PASSWORD, headers={CLIENT_ADDRESS_HEADER: "198.51.100.1"})

    assert forged.status_code == 429


async def test_through_the_gateway_each_client_address_is_throttled_on_its_own(
    gateway: ServiceAuthenticator, api: AuthApi
) -> None:
    user = await api.new_user()

    def from_client(address: str) -> dict[str, str]:
        # A new service token per request, as the gateway's client sends (a token is good once).
        return {**gateway.headers_for("auth"), CLIENT_ADDRESS_HEADER: address}

    for _ in range(5):
        assert (await login(api, user.email, WRONG, from_client("203.0.113.5"))).status_code == 401

    attacker = await login(api, user.email, PASSWORD, from_client("203.0.113.5"))
    real_user = await login(api, user.email, PASSWORD, from_client("198.51.100.7"))

    assert attacker.status_code == 429
    assert real_user.status_code == 200, real_user.text


async def test_a_successful_login_resets_the_count(api: AuthApi) -> None:
    user = await api.new_user()  # logs in once
    for _ in range(4):
        assert (await login(api, user.email, WRONG)).status_code == 401
    assert (await login(api, user.email, PASSWORD)).status_code == 200

    for _ in range(4):
        assert (await login(api, user.email, WRONG)).status_code == 401
    assert (await login(api, user.email, PASSWORD)).status_code == 200


async def test_unknown_accounts_are_throttled_too(api: AuthApi) -> None:
    answers = [(await login(api, "nobody@example.com", WRONG)).status_code for _ in range(6)]

    assert answers == [401] * 5 + [429]
