"""Who may see and do what: users see only their own data, admin routes are for admins,
tokens are required, and internal routes are not reachable through the gateway."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from stack.runner import Stack

from .conftest import Mailbox, Stays, User, assert_problem, eventually


def test_user_b_sees_none_of_user_as_data_anywhere(
    client: httpx.Client,
    new_member: Callable[..., User],
    stays: Stays,
    mailbox: Mailbox,
    admin: dict[str, str],
) -> None:
    a, b = new_member("alice"), new_member("bert")
    check_in, check_out = stays.take(1)
    made = client.post(
        "/api/v1/reservations",
        headers=a.headers(),
        json={"room_id": "r104", "check_in": check_in, "check_out": check_out},
    )
    assert made.status_code == 201, made.text
    rid = made.json()["reservation_id"]
    issued = client.post("/api/v1/licenses", headers=admin, json={"product": "Isolation Suite", "seats": 2})
    assert issued.status_code == 201, issued.text
    activated = client.post(
        "/api/v1/licenses/activate",
        headers=a.auth,
        json={"license_key": issued.json()["license_key"], "machine_id": "alice-laptop"},
    )
    assert activated.status_code == 200, activated.text
    # Let A's side effects land everywhere before looking for them from B's side.
    mailbox.wait_for(a.email, "Reservation confirmed", contains=rid)
    mailbox.wait_for(a.email, "License activated")
    eventually(
        lambda: len(client.get("/api/v1/members/me/history", headers=a.auth).json()["items"]) == 2,
        "A's history (reservation and license)",
    )

    # A's reservation does not exist for B: 404, and B's DELETE changes nothing.
    assert_problem(client.get(f"/api/v1/reservations/{rid}", headers=b.auth), 404)
    assert_problem(client.delete(f"/api/v1/reservations/{rid}", headers=b.auth), 404)
    still = client.get(f"/api/v1/reservations/{rid}", headers=a.auth)
    assert still.status_code == 200
    assert still.json()["status"] == "confirmed"

    # Nothing of A's anywhere B can look.
    a_marks = (a.user_id, a.email, rid, activated.json()["activation_id"], "alice-laptop")
    views = {
        "reservations": client.get("/api/v1/reservations", headers=b.auth),
        "dashboard": client.get("/api/v1/dashboard", headers=b.auth),
        "notifications": client.get("/api/v1/notifications", headers=b.auth),
        "licenses": client.get("/api/v1/licenses", headers=b.auth),
        "history": client.get("/api/v1/members/me/history", headers=b.auth),
        "profile": client.get("/api/v1/members/me", headers=b.auth),
        "contact": client.get("/api/v1/notifications/contact", headers=b.auth),
    }
    for name, response in views.items():
        assert response.status_code == 200, f"{name}: {response.text}"
        leaked = [mark for mark in a_marks if mark in response.text]
        assert not leaked, f"B's {name} shows A's {leaked}"
    assert views["reservations"].json()["items"] == []
    assert views["licenses"].json()["items"] == []
    assert views["history"].json()["items"] == []
    dashboard = views["dashboard"].json()
    assert dashboard["degraded"] is False, dashboard
    assert dashboard["profile"]["member_id"] == b.user_id
    assert dashboard["reservations"] == dashboard["licenses"] == []
    assert {n["recipient"] for n in views["notifications"].json()["items"]} <= {b.email}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/licenses", {"product": "Not Yours", "seats": 3}),
        ("POST", "/api/v1/admin/members/{other}/suspend", None),
    ],
)
def test_a_member_token_on_admin_routes_is_403(
    client: httpx.Client,
    new_member: Callable[..., User],
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    member, other = new_member("plain"), new_member("target")

    response = client.request(method, path.format(other=other.user_id), headers=member.auth, json=body)

    assert_problem(response, 403)
    assert client.get("/api/v1/members/me", headers=other.auth).json()["status"] == "active"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/reservations"),
        ("POST", "/api/v1/reservations"),
        ("GET", "/api/v1/reservations/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/api/v1/reservations/00000000-0000-0000-0000-000000000000"),
        ("GET", "/api/v1/members/me"),
        ("PATCH", "/api/v1/members/me"),
        ("GET", "/api/v1/members/me/history"),
        ("GET", "/api/v1/dashboard"),
        ("GET", "/api/v1/licenses"),
        ("POST", "/api/v1/licenses"),
        ("POST", "/api/v1/licenses/activate"),
        ("GET", "/api/v1/notifications"),
        ("GET", "/api/v1/notifications/contact"),
        ("POST", "/api/v1/admin/members/00000000-0000-0000-0000-000000000000/suspend"),
    ],
)
def test_no_token_is_401(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path, json={} if method in ("POST", "PATCH") else None)

    assert_problem(response, 401)


def _unsigned(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_garbage_forged_and_unsigned_tokens_are_401(
    client: httpx.Client, new_member: Callable[..., User]
) -> None:
    user = new_member("forger")
    header, payload, signature = user.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["member", "admin"]
    tampered = ".".join(
        [header, base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(), signature]
    )
    for token in ("not-a-jwt", tampered, _unsigned(claims)):
        response = client.get("/api/v1/reservations", headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401)
        issued = client.post(
            "/api/v1/licenses",
            headers={"Authorization": f"Bearer {token}"},
            json={"product": "Forged", "seats": 1},
        )
        assert_problem(issued, 401)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", -60),  # expired a minute ago (beyond any leeway)
        ("aud", "another-api"),
        ("iss", "not-auth"),
    ],
)
def test_tokens_signed_with_auth_s_own_key_but_expired_or_misdirected_are_401(
    client: httpx.Client, stack: Stack, new_member: Callable[..., User], claim: str, value: object
) -> None:
    """Signed with the real key (read from the stack's key folder, as a thief would), only the
    claims wrong: the signature is fine, the token still is not."""
    user = new_member("thief")
    key_file = stack.run_dir / "keys" / "user-tokens" / "signing.key"
    assert key_file.exists(), f"auth's signing key is not where this test expects it: {key_file}"
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    header = jwt.get_unverified_header(user.token)
    claims = jwt.decode(user.token, options={"verify_signature": False})
    control = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": header["kid"]})  # type: ignore[arg-type]
    claims[claim] = int(time.time()) + value if claim == "exp" else value
    bad = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": header["kid"]})  # type: ignore[arg-type]

    assert (
        client.get("/api/v1/reservations", headers={"Authorization": f"Bearer {control}"}).status_code == 200
    )
    assert_problem(client.get("/api/v1/reservations", headers={"Authorization": f"Bearer {bad}"}), 401)
    assert_problem(client.get("/api/v1/dashboard", headers={"Authorization": f"Bearer {bad}"}), 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/internal/members/x"),
        ("GET", "/internal/users/x"),
        ("POST", "/internal/holds"),
        ("DELETE", "/internal/holds/x"),
    ],
)
def test_internal_routes_are_not_reachable_through_the_gateway(
    client: httpx.Client, new_member: Callable[..., User], admin: dict[str, str], method: str, path: str
) -> None:
    user = new_member("prober")
    body = {"reservation_id": "x", "room_id": "r101", "check_in": "2030-01-01", "check_out": "2030-01-02"}
    for headers in ({}, user.auth, admin):
        response = client.request(method, path, headers=headers, json=body if method == "POST" else None)
        assert_problem(response, 404)
