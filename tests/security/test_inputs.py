"""What a client sends: extra fields (mass assignment), broken and huge bodies, control and
bidi characters in what users see, page sizes. Never a 500, never an effect the field should
not have had, always an RFC 9457 problem for the refusal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ..conftest import PASSWORD, Stays
from .conftest import Judge, People, System, category
from .forge import payload_of

CATEGORY = "mass assignment"
BAD_INPUT = frozenset({400, 413, 415, 422})


# -- mass assignment -------------------------------------------------------------------------------
#
# Extra fields must not take effect: the write is refused (422), or it succeeds and the answer
# (and what is stored) shows none of them.

ESCALATIONS: dict[str, Any] = {
    "roles": ["member", "admin"],
    "role": "admin",
    "is_admin": True,
    "status": "suspended",
    "tier": "platinum",
    "version": 999,
    "seats": 1000,
    "seats_total": 1000,
    "user_id": "00000000-0000-4000-8000-000000000001",
    "member_id": "00000000-0000-4000-8000-000000000001",
    "id": "00000000-0000-4000-8000-000000000001",
    "created_at": "2000-01-01T00:00:00Z",
}


def no_escalation(answer: dict[str, Any], extra: str, value: Any) -> bool:
    """The answer does not carry the injected value for ``extra`` (or a role it grants)."""
    if answer.get(extra) == value:
        return False
    if "roles" in answer and "admin" in answer["roles"]:
        return False
    return value != answer.get("user_id") and value != answer.get("member_id")


@dataclass(frozen=True)
class Write:
    name: str
    send: Callable[[httpx.Client, System, People, dict[str, Any], str], httpx.Response]
    services: tuple[str, ...] = ("gateway",)
    fields: tuple[str, ...] = ()  # the write's own fields: setting them is no escalation


def _signup(
    http: httpx.Client, system: System, p: People, extra: dict[str, Any], service: str
) -> httpx.Response:
    body = {
        "email": f"sec-ma-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "display_name": "Mass",
    }
    return http.post(system.url(service) + "/api/v1/auth/signup", json={**body, **extra})


def _patch(
    http: httpx.Client, system: System, p: People, extra: dict[str, Any], service: str
) -> httpx.Response:
    return http.patch(
        system.url(service) + "/api/v1/members/me", json={"display_name": "Bob", **extra}, headers=p.bob.auth
    )


def _activate(
    http: httpx.Client, system: System, p: People, extra: dict[str, Any], service: str
) -> httpx.Response:
    body = {"license_key": p.license_key, "machine_id": "bob-desktop"}
    return http.post(
        system.url(service) + "/api/v1/licenses/activate", json={**body, **extra}, headers=p.bob.auth
    )


def _issue(
    http: httpx.Client, system: System, p: People, extra: dict[str, Any], service: str
) -> httpx.Response:
    body = {"product": "sec-mass", "seats": 1}
    return http.post(system.url(service) + "/api/v1/licenses", json={**body, **extra}, headers=p.admin)


def _reserve_again(
    http: httpx.Client, system: System, p: People, extra: dict[str, Any], service: str
) -> httpx.Response:
    # A fresh key: a new reservation attempt whose extra fields must be refused before booking.
    headers = p.bob.headers(f"sec-ma-{uuid.uuid4()}")
    return http.post(
        system.url(service) + "/api/v1/reservations", json={**p.reservation_body, **extra}, headers=headers
    )


def _refresh(
    http: httpx.Client, system: System, p: People, extra: dict[str, Any], service: str
) -> httpx.Response:
    login = http.post(
        system.url("auth") + "/api/v1/auth/token", data={"username": p.bob.email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return http.post(
        system.url(service) + "/api/v1/auth/refresh",
        json={"refresh_token": login.json()["refresh_token"], **extra},
    )


def _fault(
    http: httpx.Client, system: System, p: People, extra: dict[str, Any], service: str
) -> httpx.Response:
    body = {"kind": "latency", "where": "inbound", "match": "/no-such-path", "latency_ms": 0, "ttl_s": 1}
    return http.put(
        system.url("gateway") + "/api/v1/admin/faults/room/sec-mass", json={**body, **extra}, headers=p.admin
    )


WRITES = (
    Write("sign-up", _signup, ("gateway", "auth")),
    Write("profile patch", _patch, ("gateway", "member")),
    Write("license activation", _activate, ("gateway", "auth")),
    Write("license issue (admin)", _issue, ("gateway", "auth"), ("seats",)),
    Write("reservation", _reserve_again, ("gateway", "room")),
    Write("token refresh", _refresh, ("gateway",)),
    Write("fault switch (admin)", _fault, ("gateway",)),
)
MASS_CASES = [
    (w, s, extra) for w in WRITES for s in w.services for extra in ESCALATIONS if extra not in w.fields
]


@pytest.mark.parametrize(
    ("write", "service", "extra"), MASS_CASES, ids=[f"{w.name}-{s}-{e}" for w, s, e in MASS_CASES]
)
def test_extra_fields_never_take_effect(
    write: Write, service: str, extra: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    value = ESCALATIONS[extra]
    response = write.send(http, system, people, {extra: value}, service)
    request = f"{service}: {write.name} with {extra}={value!r}"
    if response.status_code >= 300:
        judge.status(response, {422}, request)
        return
    answer = response.json() if response.content else {}
    if "access_token" in answer:
        answer = {**answer, **payload_of(answer["access_token"])}
    if write.name == "reservation" and response.status_code == 201:
        # Bob booking Alice's nights under a fresh key is fine; the extra field is not.
        pass
    judge.holds(
        no_escalation(answer, extra, value), request, "422, or the field ignored", response.text[:160]
    )


@pytest.mark.parametrize("service", ["gateway", "member"])
def test_bobs_profile_kept_its_status_tier_and_id(
    service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    response = http.get(system.url(service) + "/api/v1/members/me", headers=people.bob.auth)
    body = response.json() if response.status_code == 200 else {}
    ok = (body.get("status"), body.get("tier"), body.get("member_id")) == (
        "active",
        "standard",
        people.bob.user_id,
    )
    judge.holds(
        ok,
        f"{service}: Bob's profile after the mass-assignment attempts",
        "active, standard, his id",
        response.text[:160],
    )


# -- malformed, oversized, nested bodies -------------------------------------------------------------

NESTED = "[" * 20_000 + "]" * 20_000
BODIES: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"{not json", "application/json"),
    "truncated JSON": (b'{"a": "b', "application/json"),
    "empty body": (b"", "application/json"),
    "JSON null": (b"null", "application/json"),
    "JSON array": (b"[]", "application/json"),
    "JSON string": (b'"x"', "application/json"),
    "NaN": (b'{"seats": NaN, "display_name": NaN}', "application/json"),
    "1e400": (b'{"seats": 1e400, "display_name": 1e400}', "application/json"),
    "a 5000-digit integer": (
        ('{"seats": ' + "9" * 5000 + ', "display_name": ' + "9" * 5000 + "}").encode(),
        "application/json",
    ),
    "deeply nested arrays": (NESTED.encode(), "application/json"),
    "deeply nested objects": (('{"a":' * 20_000 + "1" + "}" * 20_000).encode(), "application/json"),
    "invalid UTF-8": (b'{"display_name": "\xff\xfe\xfa"}', "application/json"),
    "NUL bytes": (b'{"display_name": "a\x00b"}', "application/json"),
    "form body to a JSON route": (b"display_name=x&seats=1", "application/x-www-form-urlencoded"),
    "XML": (
        b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><a>&e;</a>",
        "application/xml",
    ),
    "2 MB string": (json.dumps({"display_name": "x" * 2_000_000}).encode(), "application/json"),
    "1000 keys": (json.dumps({f"k{i}": i for i in range(1000)}).encode(), "application/json"),
    "duplicate keys": (
        b'{"display_name": "a", "display_name": "b", "roles": ["admin"], "roles": []}',
        "application/json",
    ),
}


@dataclass(frozen=True)
class BodyTarget:
    method: str
    path: str
    service: str
    user: str | None = "bob"  # who sends it; None = anonymous
    headers: dict[str, str] = field(default_factory=dict)


BODY_TARGETS = (
    BodyTarget("POST", "/api/v1/auth/signup", "gateway", None),
    BodyTarget("POST", "/api/v1/auth/signup", "auth", None),
    BodyTarget("PATCH", "/api/v1/members/me", "gateway"),
    BodyTarget("PATCH", "/api/v1/members/me", "member"),
    BodyTarget("POST", "/api/v1/reservations", "gateway", "bob", {"Idempotency-Key": "<fresh>"}),
    BodyTarget("POST", "/api/v1/licenses/activate", "gateway"),
    BodyTarget("POST", "/api/v1/auth/refresh", "gateway", None),
)


@category("malformed bodies")
@pytest.mark.parametrize("target", BODY_TARGETS, ids=lambda t: f"{t.service} {t.method} {t.path}")
@pytest.mark.parametrize("body", BODIES, ids=str)
def test_malformed_bodies_are_a_4xx_problem(
    body: str, target: BodyTarget, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    content, content_type = BODIES[body]
    headers = (
        {"Content-Type": content_type, **people.bob.auth} if target.user else {"Content-Type": content_type}
    )
    headers.update({k: (f"sec-{uuid.uuid4()}" if v == "<fresh>" else v) for k, v in target.headers.items()})
    response = http.request(
        target.method, system.url(target.service) + target.path, content=content, headers=headers
    )
    request = f"{target.service} {target.method} {target.path} with {body}"
    is_problem = response.headers.get("content-type", "").startswith("application/problem+json")
    if response.status_code in BAD_INPUT and not is_problem:
        judge.holds(
            False,
            request,
            "a 4xx problem+json",
            f"{response.status_code} {response.headers.get('content-type')}",
            accepted=False,
        )
        return
    judge.refused(response, BAD_INPUT, request)


# -- control and bidi characters in what users see ----------------------------------------------------

NASTY = {
    "NUL": "Ada\x00Lovelace",
    "CRLF": "Ada\r\nBcc: victim@example.com",
    "LF": "Ada\nLovelace",
    "ESC (terminal escape)": "Ada\x1b[31mred",
    "DEL": "Ada\x7f",
    "bidi override RLO": "Ada\u202eecalevol",
    "bidi isolate LRI": "Ada\u2066x\u2069",
    "right-to-left mark": "Ada\u200f",
    "line separator U+2028": "Ada\u2028Lovelace",
    "NEL U+0085": "Ada\u0085Lovelace",
    "lone surrogate escape": "Ada\\ud800",
}


def _nasty_signup(
    http: httpx.Client, system: System, people: People, text: str, service: str
) -> httpx.Response:
    body = {
        "email": f"sec-cc-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "display_name": text,
    }
    return http.post(system.url(service) + "/api/v1/auth/signup", content=_json(body), headers=_JSON)


def _nasty_patch(
    http: httpx.Client, system: System, people: People, text: str, service: str
) -> httpx.Response:
    return http.patch(
        system.url(service) + "/api/v1/members/me",
        content=_json({"display_name": text}),
        headers={**_JSON, **people.bob.auth},
    )


def _nasty_machine(
    http: httpx.Client, system: System, people: People, text: str, service: str
) -> httpx.Response:
    body = {"license_key": people.license_key, "machine_id": text}
    return http.post(
        system.url(service) + "/api/v1/licenses/activate",
        content=_json(body),
        headers={**_JSON, **people.bob.auth},
    )


_JSON = {"Content-Type": "application/json"}


def _json(body: dict[str, str]) -> bytes:
    # "\\ud800" stays a JSON escape of a lone surrogate (what a client can send, but not encode).
    return json.dumps(body).replace("\\\\ud800", "\\ud800").encode()


FIELDS = (
    ("display_name at sign-up", _nasty_signup, ("gateway", "auth")),
    ("display_name patch", _nasty_patch, ("gateway", "member")),
    ("machine_id", _nasty_machine, ("gateway", "auth")),
)
CHAR_CASES = [(f, s, n) for f in FIELDS for s in f[2] for n in NASTY]


@category("control characters")
@pytest.mark.parametrize(
    ("field_", "service", "nasty"), CHAR_CASES, ids=[f"{f[0]}-{s}-{n}" for f, s, n in CHAR_CASES]
)
def test_control_and_bidi_characters_are_refused(
    field_: tuple[str, Callable[..., httpx.Response], tuple[str, ...]],
    service: str,
    nasty: str,
    http: httpx.Client,
    system: System,
    people: People,
    judge: Judge,
) -> None:
    response = field_[1](http, system, people, NASTY[nasty], service)
    judge.refused(response, {422}, f"{service}: {field_[0]} with {nasty}")


@category("control characters (controls)")
@pytest.mark.parametrize("text", ["Ada Lovelace", "Zoë Ångström", "李小龍", "O'Brien-Smith"])
def test_ordinary_names_are_accepted(
    text: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    judge.status(_nasty_signup(http, system, people, text, "gateway"), {201}, f"gateway: sign-up as {text!r}")


# -- page sizes ----------------------------------------------------------------------------------------

PAGED = (
    ("/api/v1/reservations", "room"),
    ("/api/v1/notifications", "notification"),
    ("/api/v1/members/me/history", "member"),
    ("/api/v1/licenses", "auth"),
)
BAD_PAGES = {
    "limit 101": {"limit": "101"},
    "limit 1000000": {"limit": "1000000"},
    "limit 0": {"limit": "0"},
    "limit -1": {"limit": "-1"},
    "limit not a number": {"limit": "all"},
    "cursor garbage": {"cursor": "not-a-cursor!!"},
    "cursor forged JSON": {"cursor": "eyJvZmZzZXQiOiAtMX0"},
}


@category("pagination")
@pytest.mark.parametrize("where", ["gateway", "owner"])
@pytest.mark.parametrize("query", BAD_PAGES, ids=str)
@pytest.mark.parametrize(("path", "owner"), PAGED, ids=lambda v: str(v))
def test_page_size_and_cursor_are_checked(
    path: str,
    owner: str,
    query: str,
    where: str,
    http: httpx.Client,
    system: System,
    people: People,
    judge: Judge,
) -> None:
    service = "gateway" if where == "gateway" else owner
    response = http.get(system.url(service) + path, params=BAD_PAGES[query], headers=people.alice.auth)
    judge.refused(response, {422}, f"{service}: GET {path} {BAD_PAGES[query]}")


@category("pagination")
@pytest.mark.parametrize(("path", "owner"), PAGED, ids=lambda v: str(v))
def test_a_page_is_bounded_and_says_where_the_next_one_is(
    path: str, owner: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    response = http.get(system.url("gateway") + path, params={"limit": "1"}, headers=people.alice.auth)
    body = response.json() if response.status_code == 200 else {}
    ok = isinstance(body.get("items"), list) and len(body["items"]) <= 1 and "next_cursor" in body
    judge.holds(ok, f"gateway: GET {path}?limit=1", "200, at most 1 item, next_cursor", response.text[:160])


@category("idempotency scoping")
@pytest.mark.parametrize("service", ["gateway", "room"])
@pytest.mark.parametrize("body", ["same body", "other nights"])
def test_an_idempotency_key_is_scoped_to_its_user(
    body: str, service: str, http: httpx.Client, system: System, people: People, stays: Stays, judge: Judge
) -> None:
    if body == "same body":
        payload = people.reservation_body
    else:
        check_in, check_out = stays.take(1)
        payload = {"room_id": "r102", "check_in": check_in, "check_out": check_out}
    response = http.post(
        system.url(service) + "/api/v1/reservations",
        json=payload,
        headers=people.bob.headers(people.reservation_key),
    )
    answer = response.json() if response.status_code < 300 else {}
    leaked = (
        answer.get("reservation_id") == people.reservation_id
        or answer.get("member_id") == people.alice.user_id
    )
    request = f"{service}: Bob POST /api/v1/reservations with Alice's Idempotency-Key ({body})"
    if response.status_code >= 400:
        # No night left (409), or Bob's own earlier use of the key with another body (422).
        judge.status(response, {409, 422}, request)
        return
    judge.holds(
        not leaked and answer.get("member_id") == people.bob.user_id,
        request,
        "Bob's own new reservation",
        response.text[:160],
    )


@category("idempotency scoping")
@pytest.mark.parametrize("key", ["", "x" * 256, "x" * 10_000])
def test_a_bad_idempotency_key_is_refused(
    key: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    response = http.post(
        system.url("gateway") + "/api/v1/reservations",
        json=people.reservation_body,
        headers=people.bob.headers(key) if key else people.bob.auth,
    )
    judge.refused(
        response, {400, 422, 431}, f"gateway: POST /api/v1/reservations with a key of {len(key)} characters"
    )
