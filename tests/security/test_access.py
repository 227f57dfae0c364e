"""Broken object- and function-level authorization: Bob goes after what Alice owns, a member
after what only an admin may do. Every case runs at the gateway and, where the service has the
route, at the service's own port too (a service must not lean on the gateway for its checks).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from .conftest import Judge, People, System, category

CATEGORY = "BOLA"
HARMLESS_FAULT = {
    "kind": "latency",
    "where": "inbound",
    "match": "/no-such-path",
    "latency_ms": 0,
    "ttl_s": 1,
}


def via(service: str) -> tuple[str, str]:
    """The gateway and the owning service: where each case is sent."""
    return ("gateway", service)


# -- BOLA: Bob and Alice's objects ---------------------------------------------------------------


@dataclass(frozen=True)
class ObjectCase:
    name: str
    method: str
    path: str  # {rid} Alice's reservation, {aid} Alice's id, {act} her activation
    owner: str
    expected: frozenset[int] = frozenset({404})


OBJECT_CASES = (
    ObjectCase("read Alice's reservation", "GET", "/api/v1/reservations/{rid}", "room"),
    ObjectCase("cancel Alice's reservation", "DELETE", "/api/v1/reservations/{rid}", "room"),
    ObjectCase("read a reservation by a made-up id", "GET", "/api/v1/reservations/{random}", "room"),
    ObjectCase("read Alice's profile by id", "GET", "/api/v1/members/{aid}", "member", frozenset({404, 405})),
    ObjectCase(
        "patch Alice's profile by id", "PATCH", "/api/v1/members/{aid}", "member", frozenset({404, 405})
    ),
    ObjectCase(
        "Alice's history by id", "GET", "/api/v1/members/{aid}/history", "member", frozenset({404, 405})
    ),
    ObjectCase("Alice's activation by id", "GET", "/api/v1/licenses/{act}", "auth", frozenset({404, 405})),
    ObjectCase(
        "Alice's notifications by id",
        "GET",
        "/api/v1/notifications/{aid}",
        "notification",
        frozenset({404, 405}),
    ),
    ObjectCase("reservation id with a path trick", "GET", "/api/v1/reservations/{rid}%2F..%2F{rid}", "room"),
)


def fill(path: str, people: People) -> str:
    return path.format(
        rid=people.reservation_id, aid=people.alice.user_id, act=people.activation_id, random=uuid.uuid4()
    )


@pytest.mark.parametrize("where", ["gateway", "owner"])
@pytest.mark.parametrize("case", OBJECT_CASES, ids=lambda c: c.name)
def test_bob_cannot_reach_alices_objects(
    case: ObjectCase, where: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    service = "gateway" if where == "gateway" else case.owner
    url = httpx.URL(system.url(service)).copy_with(raw_path=fill(case.path, people).encode())
    body = {"display_name": "Bob was here"} if case.method == "PATCH" else None
    response = http.request(case.method, url, headers=people.bob.auth, json=body)
    judge.refused(response, case.expected, f"{service}: Bob {case.method} {case.path}")


@pytest.mark.parametrize("service", ["gateway", "room"])
def test_alices_reservation_is_still_hers_and_confirmed(
    service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    for path in ("/api/v1/reservations/{rid}",):
        response = http.get(system.url(service) + fill(path, people), headers=people.alice.auth)
        ok = response.status_code == 200 and response.json().get("status") == "confirmed"
        judge.holds(
            ok,
            f"{service}: Alice reads her reservation after Bob's attempts",
            "200 confirmed",
            response.text[:160],
        )


# Lists Bob asks for, with query parameters naming Alice: each must list only Bob's own things.
LISTS = (
    ("/api/v1/reservations", "room", "member_id"),
    ("/api/v1/licenses", "auth", "user_id"),
    ("/api/v1/notifications", "notification", "recipient"),
    ("/api/v1/members/me/history", "member", "member_id"),
)
LIST_QUERIES: dict[str, Callable[[People, str], dict[str, str]]] = {
    "plain": lambda p, field: {},
    "naming Alice": lambda p, field: {field: p.alice.user_id},
    "naming Alice as member_id": lambda p, field: {"member_id": p.alice.user_id},
    "naming Alice as user_id": lambda p, field: {"user_id": p.alice.user_id},
    "naming Alice's email": lambda p, field: {"email": p.alice.email, "recipient": p.alice.email},
}


def mentions_alice(body: Any, people: People) -> bool:
    text = repr(body)
    return any(
        marker in text
        for marker in (people.alice.user_id, people.alice.email, people.reservation_id, people.activation_id)
    )


@pytest.mark.parametrize("service", ["gateway", "owner"])
@pytest.mark.parametrize("query", LIST_QUERIES, ids=str)
@pytest.mark.parametrize(("path", "owner", "field"), LISTS, ids=lambda v: str(v))
def test_bobs_lists_never_show_alices_things(
    path: str,
    owner: str,
    field: str,
    query: str,
    service: str,
    http: httpx.Client,
    system: System,
    people: People,
    judge: Judge,
) -> None:
    target = "gateway" if service == "gateway" else owner
    params = LIST_QUERIES[query](people, field)
    response = http.get(system.url(target) + path, params=params, headers=people.bob.auth)
    if response.status_code != 200:
        judge.status(response, {200, 422}, f"{target}: Bob GET {path} {params}")
        return
    judge.holds(
        not mentions_alice(response.json(), people),
        f"{target}: Bob GET {path} {params}",
        "only Bob's items",
        "Alice's data listed" if mentions_alice(response.json(), people) else "only Bob's",
    )


PROFILE_VIEWS = (
    ("/api/v1/members/me", "member", "member_id"),
    ("/api/v1/notifications/contact", "notification", "member_id"),
)


@pytest.mark.parametrize("service", ["gateway", "owner"])
@pytest.mark.parametrize(("path", "owner", "field"), PROFILE_VIEWS, ids=lambda v: str(v))
def test_me_is_always_the_caller(
    path: str,
    owner: str,
    field: str,
    service: str,
    http: httpx.Client,
    system: System,
    people: People,
    judge: Judge,
) -> None:
    target = "gateway" if service == "gateway" else owner
    params = {"member_id": people.alice.user_id, "user_id": people.alice.user_id}
    response = http.get(system.url(target) + path, params=params, headers=people.bob.auth)
    if response.status_code != 200:
        judge.status(response, {200, 404, 422}, f"{target}: Bob GET {path}?member_id=<Alice>")
        return
    judge.holds(
        response.json().get(field) == people.bob.user_id and not mentions_alice(response.json(), people),
        f"{target}: Bob GET {path}?member_id=<Alice>",
        "Bob's own",
        response.text[:160],
    )


# -- BFLA: admin functions as a member -------------------------------------------------------------


@dataclass(frozen=True)
class AdminCase:
    name: str
    method: str
    path: str
    owner: str
    body: dict[str, Any] | None = None


ADMIN_CASES = (
    AdminCase("issue a license", "POST", "/api/v1/licenses", "auth", {"product": "free", "seats": 1000}),
    AdminCase("suspend Alice", "POST", "/api/v1/admin/members/{aid}/suspend", "member"),
    AdminCase("suspend oneself", "POST", "/api/v1/admin/members/{bid}/suspend", "member"),
    *(
        AdminCase(f"{verb} faults of {svc}", method, f"/api/v1/admin/faults/{svc}{suffix}", "gateway", body)
        for svc in ("gateway", "auth", "member", "room", "inventory", "notification")
        for verb, method, suffix, body in (
            ("list", "GET", "", None),
            ("set", "PUT", "/sec-bfla", HARMLESS_FAULT),
            ("clear", "DELETE", "", None),
        )
    ),
    AdminCase("delete one fault", "DELETE", "/api/v1/admin/faults/room/sec-bfla", "gateway"),
)


def fill_admin(path: str, people: People) -> str:
    return path.format(aid=people.alice.user_id, bid=people.bob.user_id)


@category("BFLA")
@pytest.mark.parametrize("who", ["member", "anonymous"])
@pytest.mark.parametrize("case", ADMIN_CASES, ids=lambda c: c.name)
def test_admin_functions_refuse_members(
    case: AdminCase, who: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    headers = people.bob.auth if who == "member" else {}
    expected = {403} if who == "member" else {401}
    url = system.url("gateway") + fill_admin(case.path, people)
    response = http.request(case.method, url, headers=headers, json=case.body)
    judge.refused(response, expected, f"gateway: {who} {case.method} {case.path}")


@category("BFLA")
@pytest.mark.parametrize("case", [c for c in ADMIN_CASES if c.owner != "gateway"], ids=lambda c: c.name)
def test_admin_functions_refuse_members_at_the_service(
    case: AdminCase, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    url = system.url(case.owner) + fill_admin(case.path, people)
    response = http.request(case.method, url, headers=people.bob.auth, json=case.body)
    judge.refused(response, {403}, f"{case.owner}: member {case.method} {case.path}")


@category("BFLA")
@pytest.mark.parametrize("service", ["gateway", "auth", "member", "room", "inventory", "notification"])
def test_service_fault_switches_refuse_even_an_admin_user(
    service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    # An admin's bearer token is a user credential: a service's own /admin/faults wants a service token.
    url = system.url(service) + "/admin/faults/sec-bfla"
    response = http.put(url, headers=people.admin, json=HARMLESS_FAULT)
    judge.refused(response, {401}, f"{service}: admin user's bearer token PUT /admin/faults/sec-bfla")


@category("BFLA")
@pytest.mark.parametrize("service", ["gateway", "member"])
def test_alice_is_still_active_after_bobs_attempts(
    service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    response = http.get(system.url(service) + "/api/v1/members/me", headers=people.alice.auth)
    ok = response.status_code == 200 and response.json().get("status") == "active"
    judge.holds(
        ok, f"{service}: Alice's profile after Bob tried to suspend her", "status active", response.text[:160]
    )


@category("BFLA (controls)")
@pytest.mark.parametrize("service", ["gateway", "room"])
def test_the_admin_may_list_fault_switches(
    service: str, http: httpx.Client, system: System, people: People, judge: Judge
) -> None:
    response = http.get(system.url("gateway") + f"/api/v1/admin/faults/{service}", headers=people.admin)
    judge.status(response, {200}, f"gateway: admin GET /api/v1/admin/faults/{service}")
