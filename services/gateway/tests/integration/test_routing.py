"""Requests reach the owning service with what it needs; its answers come back unchanged."""

from __future__ import annotations

import json

from common.context import TraceContext

MEMBER_ID = "8d7f6c0e-6a57-4b1e-9a51-0c2f6f0b7a11"


ROUTED = [
    ("POST", "/api/v1/auth/signup", "auth", True),
    ("POST", "/api/v1/auth/refresh", "auth", True),
    ("POST", "/api/v1/licenses", "auth", False),
    ("POST", "/api/v1/licenses/activate", "auth", False),
    ("GET", "/api/v1/licenses", "auth", False),
    ("GET", "/api/v1/members/me", "member", False),
    ("PATCH", "/api/v1/members/me", "member", False),
    ("GET", "/api/v1/members/me/history", "member", False),
    ("POST", f"/api/v1/admin/members/{MEMBER_ID}/suspend", "member", False),
    ("GET", "/api/v1/rooms", "room", True),
    ("GET", "/api/v1/rooms/r101", "room", True),
    ("GET", "/api/v1/reservations", "room", False),
    ("GET", "/api/v1/reservations/abc", "room", False),
    ("DELETE", "/api/v1/reservations/abc", "room", False),
    ("GET", "/api/v1/availability", "inventory", True),
    ("GET", "/api/v1/notifications", "notification", False),
    ("GET", "/api/v1/notifications/contact", "notification", False),
]


async def test_each_route_reaches_its_service(client, upstreams, users):
    for method, path, upstream, public in ROUTED:
        headers = {} if public else users.headers("u1")
        body = None if method in ("GET", "DELETE") else {"some": "thing"}

        response = await client.request(method, path, json=body, headers=headers)

        assert response.status_code == 200, (method, path, response.text)
        assert response.json()["upstream"] == upstream
        [seen] = [s for s in upstreams[upstream].seen if s.path == path and s.method == method]
        if body is not None:
            assert json.loads(seen.body) == body
    asked = sum(len(stub.requests()) for stub in upstreams.values())
    assert asked == len(ROUTED) + 1  # and nothing else but one JWKS fetch


async def test_query_string_goes_through_unchanged(client, upstreams):
    response = await client.get("/api/v1/availability?room_id=r101&from=2030-01-01&to=2030-01-05&x=1&x=2")

    assert response.status_code == 200
    [seen] = upstreams["inventory"].requests("/api/v1/availability")
    assert seen.query == "room_id=r101&from=2030-01-01&to=2030-01-05&x=1&x=2"


async def test_forwards_user_token_request_id_trace_deadline_key_and_its_service_token(
    client, gateway, upstreams, users, service_caller
):
    parent = TraceContext.new()
    headers = {
        **users.headers("u1"),
        "Idempotency-Key": "key-123",
        "X-Request-ID": "req-abc-123",
        "traceparent": parent.header(),
        "Accept": "application/json",
    }
    body = b'{"room_id": "r101", "check_in": "2030-01-10", "check_out": "2030-01-12"}'

    response = await client.post(
        "/api/v1/reservations", content=body, headers={**headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-abc-123"
    [seen] = upstreams["room"].requests("/api/v1/reservations")
    assert seen.body == body  # byte for byte
    assert seen.headers["authorization"] == headers["Authorization"]  # the user token, unchanged
    assert seen.headers["idempotency-key"] == "key-123"
    assert seen.headers["x-request-id"] == "req-abc-123"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["accept"] == "application/json"
    child = TraceContext.parse(seen.headers["traceparent"])
    assert child is not None
    assert child.trace_id == parent.trace_id
    assert child.span_id != parent.span_id
    budget_ms = int(seen.headers["x-deadline-ms"])
    assert 0 < budget_ms <= gateway.settings.upstream_timeout_s * 1000
    assert service_caller("room", seen.headers).caller == "gateway"


async def test_service_token_is_addressed_to_each_service(client, upstreams, users, service_caller):
    for path, upstream in [
        ("/api/v1/licenses", "auth"),
        ("/api/v1/members/me", "member"),
        ("/api/v1/reservations", "room"),
        ("/api/v1/notifications", "notification"),
    ]:
        assert (await client.get(path, headers=users.headers("u1"))).status_code == 200
        [seen] = upstreams[upstream].requests(path)
        assert service_caller(upstream, seen.headers).caller == "gateway"
    await client.get("/api/v1/availability?room_id=r101&from=2030-01-01&to=2030-01-02")
    [seen] = upstreams["inventory"].requests("/api/v1/availability")
    assert service_caller("inventory", seen.headers).caller == "gateway"


async def test_login_form_is_forwarded_as_a_form(client, upstreams):
    response = await client.post(
        "/api/v1/auth/token", data={"username": "ada@example.com", "password": "s3cret pass"}
    )

    assert response.status_code == 200
    [seen] = upstreams["auth"].requests("/api/v1/auth/token")
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.body == b"username=ada%40example.com&password=s3cret+pass"


async def test_the_client_address_is_told_to_the_service_and_a_forged_one_is_replaced(client, upstreams):
    # Auth throttles logins per client address; behind the gateway it learns it from this header.
    await client.post(
        "/api/v1/auth/token",
        data={"username": "ada@example.com", "password": "x"},
        headers={"X-Client-Address": "203.0.113.66"},
    )

    [seen] = upstreams["auth"].requests("/api/v1/auth/token")
    assert seen.headers["x-client-address"] == "203.0.113.7"  # the peer the gateway saw, not the forgery


async def test_malformed_json_reaches_the_service_which_answers_its_own_problem(client, upstreams, users):
    problem = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "not JSON"}
    upstreams["member"].answer("PATCH", "/api/v1/members/me", (400, problem))

    response = await client.patch(
        "/api/v1/members/me",
        content=b'{"display_name": ',
        headers={**users.headers("u1"), "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == problem
    assert upstreams["member"].requests("/api/v1/members/me")[0].body == b'{"display_name": '


async def test_answers_pass_through_status_body_type_and_meaningful_headers(client, upstreams, users):
    conflict = {"type": "x", "title": "Conflict", "status": 409, "detail": "profile not there yet"}
    upstreams["room"].answer(
        "POST", "/api/v1/reservations", (409, conflict, {"Retry-After": "2", "X-Internal": "no"})
    )
    upstreams["auth"].answer(
        "POST", "/api/v1/auth/signup", (201, {"user_id": "u9"}, {"Location": "/api/v1/users/u9"})
    )
    upstreams["member"].answer(
        "GET", "/api/v1/members/me", (401, {"status": 401}, {"WWW-Authenticate": 'Bearer error="x"'})
    )
    upstreams["room"].answer("DELETE", "/api/v1/reservations/r1", (204, None))

    token = users.headers("u1")
    reserved = await client.post("/api/v1/reservations", json={}, headers={**token, "Idempotency-Key": "k"})
    signed_up = await client.post("/api/v1/auth/signup", json={})
    me = await client.get("/api/v1/members/me", headers=token)
    cancelled = await client.delete("/api/v1/reservations/r1", headers=token)

    assert reserved.status_code == 409
    assert reserved.json() == conflict
    assert reserved.headers["content-type"] == "application/problem+json"
    assert reserved.headers["Retry-After"] == "2"
    assert "X-Internal" not in reserved.headers  # only headers with meaning for the client pass
    assert signed_up.status_code == 201
    assert signed_up.json() == {"user_id": "u9"}
    assert signed_up.headers["content-type"] == "application/json"
    assert signed_up.headers["Location"] == "/api/v1/users/u9"
    assert me.status_code == 401
    assert me.headers["WWW-Authenticate"] == 'Bearer error="x"'
    assert cancelled.status_code == 204
    assert cancelled.content == b""


async def test_upstream_sees_exactly_the_path_the_client_sent(client, upstreams):
    # Percent-encoding is kept: the room service decodes "r 101" itself, as if called directly.
    response = await client.get("/api/v1/rooms/r%20101")

    assert response.status_code == 200
    [seen] = upstreams["room"].requests("/api/v1/rooms/r 101")
    assert seen.raw_path == "/api/v1/rooms/r%20101"
