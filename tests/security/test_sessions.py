"""Sessions: refresh-token reuse, logout, login throttling, and a suspended member's tokens."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from ..conftest import PASSWORD, User
from .conftest import Judge, People, System, category

CATEGORY = "refresh tokens"
MAX_WRONG_PASSWORDS = 40  # throttling must have started by then
_addresses = itertools.count(10)
_lock = threading.Lock()


def address() -> str:
    """A loopback source address no other case uses: its own throttling bucket."""
    with _lock:
        return f"127.0.4.{next(_addresses)}"


def from_address(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=20)


def log_in(http: httpx.Client, url: str, email: str, password: str = PASSWORD) -> httpx.Response:
    return http.post(url + "/api/v1/auth/token", data={"username": email, "password": password})


def refresh(http: httpx.Client, url: str, token: str) -> httpx.Response:
    return http.post(url + "/api/v1/auth/refresh", json={"refresh_token": token})


@pytest.mark.parametrize("service", ["gateway", "auth"])
@pytest.mark.parametrize("step", ["the rotated token again", "its successor after the reuse"])
def test_a_reused_refresh_token_is_refused_and_revokes_the_family(
    step: str, service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    url = system.url(service)
    first = log_in(http, url, people.bob.email).json()["refresh_token"]
    rotated = refresh(http, url, first)
    assert rotated.status_code == 200, rotated.text
    successor = rotated.json()["refresh_token"]
    reuse = refresh(http, url, first)
    if step == "the rotated token again":
        judge.refused(reuse, {401}, f"{service}: refresh with a token already rotated")
    else:
        judge.refused(
            refresh(http, url, successor), {401}, f"{service}: refresh with the successor after a reuse"
        )


BAD_REFRESH: dict[str, Callable[[People], str]] = {
    "garbage": lambda p: "not-a-refresh-token",
    "an access token": lambda p: p.bob.token,
    "a made-up UUID": lambda p: str(uuid.uuid4()),
    "SQL-ish": lambda p: "' OR '1'='1",
}


@pytest.mark.parametrize("service", ["gateway", "auth"])
@pytest.mark.parametrize("kind", BAD_REFRESH, ids=str)
def test_a_refresh_token_that_was_never_issued_is_refused(
    kind: str, service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    response = refresh(http, system.url(service), BAD_REFRESH[kind](people))
    judge.refused(response, {401}, f"{service}: refresh with {kind}")


@category("logout")
@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_logout_ends_the_refresh_family(
    service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    url = system.url(service)
    tokens = log_in(http, url, people.bob.email).json()
    out = http.post(
        url + "/api/v1/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    if out.status_code not in (200, 204):
        judge.status(out, {200, 204}, f"{service}: POST /api/v1/auth/logout")
        return
    judge.refused(refresh(http, url, tokens["refresh_token"]), {401}, f"{service}: refresh after logout")


@category("logout")
@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_logout_cannot_end_someone_elses_session(
    service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    url = system.url(service)
    alice = log_in(http, url, people.alice.email).json()
    # Bob, logged in, sends Alice's refresh token to logout: a refusal, or her token keeps working.
    out = http.post(
        url + "/api/v1/auth/logout", json={"refresh_token": alice["refresh_token"]}, headers=people.bob.auth
    )
    after = refresh(http, url, alice["refresh_token"])
    ok = (out.status_code >= 400 and out.status_code < 500) or after.status_code == 200
    judge.holds(
        ok,
        f"{service}: Bob logs out with Alice's refresh token",
        "refused, or hers still works",
        f"logout {out.status_code}, her refresh {after.status_code}",
    )


# -- login throttling ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def victims(signup_and_login: Callable[..., User]) -> dict[str, User]:
    """Accounts whose passwords the throttling cases guess at (one per case: no shared counters)."""
    return {name: signup_and_login(f"sec-victim-{name}") for name in ("auth", "gateway")}


def storm(client: httpx.Client, url: str, email: str) -> tuple[httpx.Response, int]:
    """Wrong passwords until an answer is not a 401 (throttled: 429), at most ``MAX_WRONG_PASSWORDS``."""
    for attempt in range(1, MAX_WRONG_PASSWORDS + 1):
        response = log_in(client, url, email, "wrong-password-guess")
        if response.status_code != 401:
            # Throttled (429), or anything else: stop, and let the case judge it (a 5xx here
            # would also count against the gateway's breaker for auth, i.e. everyone's logins).
            return response, attempt
    return response, MAX_WRONG_PASSWORDS


@dataclass(frozen=True)
class Storm:
    """What the throttling cases judge: the storm's last answer, then the right password twice."""

    last: httpx.Response
    attempts: int
    same_address: httpx.Response
    other_address: httpx.Response


@pytest.fixture(scope="session")
def storms(system: System, victims: dict[str, User]) -> dict[str, Storm]:
    results: dict[str, Storm] = {}
    for service, victim in victims.items():
        url = system.url(service)
        with from_address(address()) as attacker:
            last, attempts = storm(attacker, url, victim.email)
            same = log_in(attacker, url, victim.email)
        with from_address(address()) as owner:
            other = log_in(owner, url, victim.email)
        results[service] = Storm(last, attempts, same, other)
    return results


@category("login throttling")
@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_repeated_wrong_passwords_are_throttled(service: str, storms: dict[str, Storm], judge: Judge) -> None:
    result = storms[service]
    retry_after = result.last.headers.get("retry-after", "")
    ok = result.last.status_code == 429 and retry_after.isdigit()
    judge.holds(
        ok,
        f"{service}: up to {MAX_WRONG_PASSWORDS} wrong passwords for one account from one address",
        "429 with Retry-After",
        f"{result.last.status_code} after {result.attempts}, retry-after={retry_after!r}",
    )


@category("login throttling")
@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_the_right_password_does_not_get_through_the_throttle(
    service: str, storms: dict[str, Storm], judge: Judge
) -> None:
    judge.refused(
        storms[service].same_address, {429}, f"{service}: the right password from the throttled address"
    )


@category("login throttling")
@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_the_real_user_from_another_address_still_gets_in(
    service: str, storms: dict[str, Storm], judge: Judge
) -> None:
    # No lock-out: an attacker guessing must not be able to keep the account's owner out.
    judge.status(storms[service].other_address, {200}, f"{service}: the right password from another address")


# -- a suspended member ---------------------------------------------------------------------------------


@dataclass
class Suspended:
    user: User
    refresh_token: str
    license_key: str


@pytest.fixture(scope="session")
def suspended(client: httpx.Client, new_member: Callable[..., User], people: People) -> Suspended:
    """A member the admin suspended, once the suspension has reached auth (or 10 s have passed)."""
    user = new_member("sec-suspended")
    tokens = client.post("/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}).json()
    response = client.post(f"/api/v1/admin/members/{user.user_id}/suspend", headers=people.admin)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended", response.text
    # The suspension travels as an event: wait for auth to refuse something (a seat each try until then).
    refused_soon(lambda: activate(client, user, people.license_key), within=10)
    return Suspended(user, tokens["refresh_token"], people.license_key)


def activate(http: httpx.Client, user: User, license_key: str, base: str = "") -> httpx.Response:
    body = {"license_key": license_key, "machine_id": f"suspended-{uuid.uuid4().hex[:8]}"}
    return http.post(base + "/api/v1/licenses/activate", json=body, headers=user.auth)


def refused_soon(call: Callable[[], httpx.Response], within: float) -> httpx.Response:
    """The first refusal (4xx) within ``within`` s, else the last answer."""
    deadline = time.monotonic() + within
    while True:
        response = call()
        if 400 <= response.status_code < 500 or time.monotonic() >= deadline:
            return response
        time.sleep(0.2)


@category("suspension")
@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_a_suspended_member_cannot_refresh(
    service: str, http: httpx.Client, system: System, suspended: Suspended, judge: Judge
) -> None:
    response = refresh(http, system.url(service), suspended.refresh_token)
    if response.status_code == 200:
        suspended.refresh_token = response.json()["refresh_token"]  # the next case tries again with it
    judge.refused(response, {401, 403}, f"{service}: a suspended member refreshes")


@category("suspension")
@pytest.mark.parametrize("service", ["gateway", "auth"])
def test_a_suspended_member_cannot_activate_a_license(
    service: str, http: httpx.Client, system: System, suspended: Suspended, judge: Judge
) -> None:
    response = activate(http, suspended.user, suspended.license_key, system.url(service))
    judge.refused(response, {401, 403}, f"{service}: a suspended member activates a license")


@category("suspension")
@pytest.mark.parametrize("service", ["gateway", "room"])
def test_a_suspended_member_cannot_reserve(
    service: str, http: httpx.Client, system: System, suspended: Suspended, people: People, judge: Judge
) -> None:
    response = http.post(
        system.url(service) + "/api/v1/reservations",
        json=people.reservation_body,
        headers=suspended.user.headers(f"sec-susp-{uuid.uuid4()}"),
    )
    judge.refused(response, {403}, f"{service}: a suspended member reserves")
