"""Token forgery: user tokens at the gateway and at each service, service tokens at each service.

Every forged variant (``forge.py``) is sent to every target; each must be refused with 401 (a
too-large header may be refused earlier, 400/413/431). Each target also gets a control: a valid
token minted the same way is accepted, so a refusal is the verifier's doing, not a broken route.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from .conftest import Judge, System, category
from .forge import COMMON_VARIANTS, SERVICE_VARIANTS, USER_VARIANTS, Forge, Variant, sign

CATEGORY = "token forgery"
OVERSIZED = frozenset({400, 401, 413, 431})  # a 60 kB header may be refused before any token check


@dataclass(frozen=True)
class Target:
    """Where a token goes: ``service`` (the gateway or a service's own port), method and path."""

    service: str
    method: str
    path: str
    ok: frozenset[int] = frozenset({200})  # what a valid token gets

    @property
    def id(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def refusal_for(variant: str) -> frozenset[int]:
    return OVERSIZED if "kB token" in variant else frozenset({401})


# -- user tokens -------------------------------------------------------------------------------

USER_TARGETS = (
    Target("gateway", "GET", "/api/v1/members/me", frozenset({200})),
    Target("gateway", "GET", "/api/v1/reservations"),
    Target("gateway", "GET", "/api/v1/licenses"),
    Target("auth", "GET", "/api/v1/licenses"),
    Target("member", "GET", "/api/v1/members/me", frozenset({200})),
    Target("room", "GET", "/api/v1/reservations"),
    Target("notification", "GET", "/api/v1/notifications"),
)
USER_MATRIX = {**COMMON_VARIANTS, **USER_VARIANTS}


def send(http: httpx.Client, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
    """The answer; a connection the server closes on an oversized header counts as a 431.

    h11 (under uvicorn) stops reading a request whose headers pass its limit and closes the
    connection; when that races the client still sending 60 kB, the client sees a reset instead of
    the 4xx. Either way the server refused to read the request: nothing reached a route.
    """
    try:
        return http.request(method, url, headers=headers)
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
        if sum(len(v) for v in headers.values()) < 16_384:
            raise  # a normal-sized request must get an answer
        return httpx.Response(431, text=f"connection closed by the server: {exc}")


def send_user_token(http: httpx.Client, system: System, target: Target, token: str) -> httpx.Response:
    url = system.url(target.service) + target.path
    return send(http, target.method, url, {"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("target", USER_TARGETS, ids=lambda t: t.id)
@pytest.mark.parametrize("variant", USER_MATRIX, ids=str)
def test_forged_user_token_is_refused(
    variant: str,
    target: Target,
    http: httpx.Client,
    system: System,
    forge: Forge,
    member_id: str,
    judge: Judge,
) -> None:
    make: Variant = USER_MATRIX[variant]
    token = make(forge, forge.user_claims(member_id), forge.user_kid, "signing")
    judge.refused(
        send_user_token(http, system, target, token), refusal_for(variant), f"{target.id} with {variant}"
    )


@category("token forgery (controls)")
@pytest.mark.parametrize("target", USER_TARGETS, ids=lambda t: t.id)
def test_a_valid_user_token_minted_the_same_way_is_accepted(
    target: Target, http: httpx.Client, system: System, forge: Forge, member_id: str, judge: Judge
) -> None:
    token = forge.user_token(forge.user_claims(member_id))
    judge.status(send_user_token(http, system, target, token), target.ok, f"{target.id} with a valid token")


AUTH_SCHEMES = {
    "no Authorization": None,
    "Basic scheme": "Basic YWRtaW46YWRtaW4=",
    "Bearer without a token": "Bearer",
    "token without a scheme": "<token>",
    "two tokens": "Bearer <token> <token>",
    "token in a cookie only": "cookie",
}


@pytest.mark.parametrize("target", USER_TARGETS[:3] + USER_TARGETS[4:5], ids=lambda t: t.id)
@pytest.mark.parametrize("scheme", AUTH_SCHEMES, ids=str)
def test_a_token_not_sent_as_a_bearer_token_is_refused(
    scheme: str,
    target: Target,
    http: httpx.Client,
    system: System,
    forge: Forge,
    member_id: str,
    judge: Judge,
) -> None:
    token = forge.user_token(forge.user_claims(member_id))
    value = AUTH_SCHEMES[scheme]
    headers: dict[str, str] = {}
    if value == "cookie":
        headers["Cookie"] = f"access_token={token}; Authorization=Bearer%20{token}"
    elif value is not None:
        headers["Authorization"] = value.replace("<token>", token)
    response = http.request(target.method, system.url(target.service) + target.path, headers=headers)
    judge.refused(response, {401}, f"{target.id} with {scheme}")


# -- service tokens ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Internal:
    """An internal (service-token) route, the caller it admits, and one it does not."""

    service: str
    method: str
    path: str
    caller: str
    stranger: str
    ok: frozenset[int]

    @property
    def id(self) -> str:
        return f"{self.service} {self.method} {self.path.split('{')[0]}"

    def url(self, system: System) -> str:
        return system.url(self.service) + self.path.format(id=uuid.uuid4())


INTERNAL_TARGETS = (
    Internal("auth", "GET", "/internal/users/{id}", "member", "room", frozenset({404})),
    Internal("member", "GET", "/internal/members/{id}", "room", "notification", frozenset({404})),
    Internal("inventory", "DELETE", "/internal/holds/{id}", "room", "member", frozenset({204})),
    # The fault switches (callers gateway and ops) on every service, the gateway's too.
    *(
        Internal(
            name, "GET", "/admin/faults", "gateway", "room" if name != "room" else "member", frozenset({200})
        )
        for name in ("gateway", "auth", "member", "room", "inventory", "notification")
    ),
)


def _user_token_as_service_token(f: Forge, c: dict[str, object], kid: str, key: str) -> str:
    return f.user_token(f.user_claims(str(uuid.uuid4())))


def _other_real_key(f: Forge, c: dict[str, object], kid: str, key: str) -> str:
    other = "notification" if kid != "notification" else "auth"
    return sign({"alg": "EdDSA", "kid": kid}, c, f.real(other))


def _user_key(f: Forge, c: dict[str, object], kid: str, key: str) -> str:
    return sign({"alg": "EdDSA", "kid": kid}, c, f.real("signing"))


SERVICE_MATRIX: dict[str, Variant] = {
    **COMMON_VARIANTS,
    **SERVICE_VARIANTS,
    "a user's access token as the service token": _user_token_as_service_token,
    "signed with another service's real key": _other_real_key,
    "signed with auth's user-token key": _user_key,
}


@pytest.mark.parametrize("target", INTERNAL_TARGETS, ids=lambda t: t.id)
@pytest.mark.parametrize("variant", SERVICE_MATRIX, ids=str)
def test_forged_service_token_is_refused(
    variant: str, target: Internal, http: httpx.Client, system: System, forge: Forge, judge: Judge
) -> None:
    claims = forge.service_claims(target.caller, target.service)
    token = SERVICE_MATRIX[variant](forge, claims, target.caller, target.caller)
    response = send(http, target.method, target.url(system), {"X-Service-Token": token})
    judge.refused(response, refusal_for(variant), f"{target.id} with {variant}")


@pytest.mark.parametrize("target", INTERNAL_TARGETS, ids=lambda t: t.id)
def test_an_internal_route_without_service_credentials_is_refused(
    target: Internal, http: httpx.Client, system: System, forge: Forge, member_id: str, judge: Judge
) -> None:
    # A user's valid access token, as the gateway forwards it, is not a service credential.
    user = {"Authorization": f"Bearer {forge.user_token(forge.user_claims(member_id, ['member', 'admin']))}"}
    response = http.request(target.method, target.url(system), headers=user)
    judge.refused(response, {401}, f"{target.id} with only an admin user's bearer token")


@pytest.mark.parametrize("target", INTERNAL_TARGETS, ids=lambda t: t.id)
def test_shared_secret_headers_do_not_open_a_jwt_mode_service(
    target: Internal, http: httpx.Client, system: System, judge: Judge
) -> None:
    headers = {"X-Service-Name": target.caller, "X-Service-Secret": "dev-only-change-me"}
    response = http.request(target.method, target.url(system), headers=headers)
    judge.refused(response, {401}, f"{target.id} with the placeholder shared secret")


@pytest.mark.parametrize("target", INTERNAL_TARGETS, ids=lambda t: t.id)
def test_a_valid_caller_not_on_the_allow_list_is_forbidden(
    target: Internal, http: httpx.Client, system: System, forge: Forge, judge: Judge
) -> None:
    token = forge.service_token(target.stranger, forge.service_claims(target.stranger, target.service))
    response = http.request(target.method, target.url(system), headers={"X-Service-Token": token})
    judge.refused(response, {403}, f"{target.id} as {target.stranger} (valid token, not allowed)")


@pytest.mark.parametrize("target", INTERNAL_TARGETS, ids=lambda t: t.id)
def test_a_replayed_service_token_is_refused(
    target: Internal, http: httpx.Client, system: System, forge: Forge, judge: Judge
) -> None:
    token = forge.service_token(target.caller, forge.service_claims(target.caller, target.service))
    first = http.request(target.method, target.url(system), headers={"X-Service-Token": token})
    if first.status_code not in target.ok:
        judge.status(first, target.ok, f"{target.id}: first use of a valid token")
        return
    again = http.request(target.method, target.url(system), headers={"X-Service-Token": token})
    # Any answer the route gives a valid caller (a 404 for an unknown id included) is an acceptance.
    judge.holds(
        again.status_code == 401,
        f"{target.id}: the same token (same jti) a second time",
        "401",
        f"{again.status_code} {again.text[:120]!r}",
        accepted=again.status_code in target.ok or again.status_code < 400 or again.status_code >= 500,
    )


@category("token forgery (controls)")
@pytest.mark.parametrize("target", INTERNAL_TARGETS, ids=lambda t: t.id)
def test_a_valid_service_token_minted_the_same_way_is_accepted(
    target: Internal, http: httpx.Client, system: System, forge: Forge, judge: Judge
) -> None:
    token = forge.service_token(target.caller, forge.service_claims(target.caller, target.service))
    response = http.request(target.method, target.url(system), headers={"X-Service-Token": token})
    judge.status(response, target.ok, f"{target.id} as {target.caller} with a valid token")


GATEWAY_INTERNAL_PATHS = (
    ("GET", "/internal/members/{id}", "member"),
    ("GET", "/internal/users/{id}", "member"),
    ("POST", "/internal/holds", "room"),
    ("DELETE", "/internal/holds/{id}", "room"),
    ("GET", "/%69nternal/members/{id}", "member"),
    ("GET", "/internal%2Fmembers%2F{id}", "member"),
    ("GET", "/api/v1/%2e%2e/%2e%2e/internal/members/{id}", "member"),
    ("GET", "//internal/members/{id}", "member"),
    ("GET", "/INTERNAL/members/{id}", "member"),
)


@category("routing")
@pytest.mark.parametrize(("method", "path", "caller"), GATEWAY_INTERNAL_PATHS, ids=lambda v: str(v))
def test_the_gateway_never_routes_internal_paths(
    method: str, path: str, caller: str, http: httpx.Client, system: System, forge: Forge, judge: Judge
) -> None:
    token = forge.service_token(caller, forge.service_claims(caller, "member"))
    url = httpx.URL(system.url("gateway")).copy_with(raw_path=path.format(id=uuid.uuid4()).encode())
    response = http.request(
        method, url, headers={"X-Service-Token": token}, json={} if method == "POST" else None
    )
    judge.refused(response, {404, 405}, f"gateway {method} {path} with a valid service token")
