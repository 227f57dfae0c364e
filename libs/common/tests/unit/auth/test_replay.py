"""A service token is good for one request: a replayed jti is refused, retries still work."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI

from common.auth import (
    SERVICE_TOKEN_HEADER,
    PublicKeyStore,
    ReplayCache,
    ServiceIdentity,
    ServiceTokenIssuer,
    ServiceTokenVerifier,
    build_service_auth,
    require_service,
    service_identity,
)
from common.errors import Unauthorized
from common.http import RetryPolicy, ServiceClient
from common.problems import install_problem_handlers


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_jti_is_accepted_once_per_caller() -> None:
    cache = ReplayCache(clock=FakeClock())

    assert cache.first_use("room", "j-1", forget_at=1030)
    assert not cache.first_use("room", "j-1", forget_at=1030)
    assert cache.first_use("gateway", "j-1", forget_at=1030)  # one caller can't burn another's ids


def test_entries_are_forgotten_when_their_token_expires() -> None:
    clock = FakeClock()
    cache = ReplayCache(clock=clock)
    cache.first_use("room", "j-1", forget_at=1030)
    cache.first_use("room", "j-2", forget_at=1060)

    clock.now = 1030
    cache.first_use("room", "j-3", forget_at=1090)  # every use sweeps what has expired

    assert len(cache) == 2
    assert cache.first_use("room", "j-1", forget_at=1090)  # expired tokens are refused by exp anyway


def test_a_full_cache_drops_the_entry_closest_to_expiry() -> None:
    cache = ReplayCache(max_entries=3, clock=FakeClock())
    for n, forget_at in enumerate([1050, 1010, 1030]):
        cache.first_use("room", f"j-{n}", forget_at=forget_at)

    cache.first_use("room", "j-new", forget_at=1060)

    assert len(cache) == 3
    assert cache.first_use("room", "j-1", forget_at=1060)  # the one with 10 s left went
    assert not cache.first_use("room", "j-0", forget_at=1060)


def test_the_verifier_refuses_a_replayed_token(keys_dir: Path, room_key: Ed25519PrivateKey) -> None:
    verifier = ServiceTokenVerifier("member", PublicKeyStore(keys_dir))
    token = ServiceTokenIssuer("room", room_key).token_for("member")

    assert verifier.verify(token).caller == "room"
    with pytest.raises(Unauthorized, match="service token replayed"):
        verifier.verify(token)


def test_a_refused_token_takes_no_room_in_the_cache(keys_dir: Path, room_key: Ed25519PrivateKey) -> None:
    cache = ReplayCache()
    verifier = ServiceTokenVerifier("inventory", PublicKeyStore(keys_dir), replay_cache=cache)
    wrong_audience = ServiceTokenIssuer("room", room_key).token_for("member")

    with pytest.raises(Unauthorized, match="audience"):
        verifier.verify(wrong_audience)
    assert len(cache) == 0


def member_app(keys_dir: Path) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.service_auth = build_service_auth("jwt", "member", keys_dir, None)

    # The router and the route both check the caller: one request, one token, checked once.
    @app.get("/internal/ping", dependencies=[Depends(require_service("room"))])
    async def ping(caller: Annotated[ServiceIdentity, Depends(service_identity)]) -> dict[str, Any]:
        return {"caller": caller.caller}

    return app


async def test_a_token_replayed_over_http_is_a_401_problem(
    keys_dir: Path, room_key: Ed25519PrivateKey
) -> None:
    headers = {SERVICE_TOKEN_HEADER: ServiceTokenIssuer("room", room_key).token_for("member")}
    transport = httpx.ASGITransport(app=member_app(keys_dir))
    async with httpx.AsyncClient(transport=transport, base_url="http://member") as http:
        first = await http.get("/internal/ping", headers=headers)
        replayed = await http.get("/internal/ping", headers=headers)

    assert first.status_code == 200, first.text
    assert first.json() == {"caller": "room"}
    assert replayed.status_code == 401
    assert replayed.headers["content-type"].startswith("application/problem+json")
    assert "replayed" in replayed.json()["detail"]
    assert replayed.headers["www-authenticate"] == "ServiceToken"


async def test_a_retried_call_sends_a_new_token_per_attempt(
    keys_dir: Path, room_key: Ed25519PrivateKey
) -> None:
    """The first attempt reaches the callee (its jti is spent) but fails; the retry must still pass."""
    callee = build_service_auth("jwt", "member", keys_dir, None)
    caller = build_service_auth("jwt", "room", keys_dir, None)
    seen: list[str] = []

    async def member(request: httpx.Request) -> httpx.Response:
        try:
            callee.authenticate(request.headers)
        except Unauthorized as exc:
            return httpx.Response(401, json={"detail": exc.detail})
        seen.append(request.headers[SERVICE_TOKEN_HEADER])
        return httpx.Response(503 if len(seen) == 1 else 200)

    async def no_sleep(_seconds: float) -> None:
        await asyncio.sleep(0)

    client = ServiceClient(
        "member",
        "http://member",
        caller="room",
        retry=RetryPolicy(max_attempts=3),
        auth=lambda: caller.headers_for("member"),
        transport=httpx.MockTransport(member),
        sleep=no_sleep,
    )
    async with client:
        response = await client.get("/internal/members/42")

    assert response.status_code == 200
    assert len(seen) == 2
    assert seen[0] != seen[1]
