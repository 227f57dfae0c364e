"""The app factory: request ids, deadlines, body limits and problem+json on every error path."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from common.app_factory import create_service_app
from common.context import DEADLINE_HEADER, current_deadline, current_trace, request_id_var
from common.errors import Conflict, UpstreamUnavailable
from common.health import CheckResult, ReadinessCheck, info_check
from common.logging import JsonFormatter
from common.testing.apps import management_client


class Booking(BaseModel):
    room_id: int
    nights: int


def _app(**kw: object) -> FastAPI:
    router = APIRouter()

    @router.post("/bookings")
    async def book(body: Booking) -> dict[str, int]:
        return {"room_id": body.room_id}

    @router.get("/context")
    async def context() -> dict[str, object]:
        deadline = current_deadline()
        trace = current_trace()
        return {
            "request_id": request_id_var.get(),
            "remaining": deadline.remaining() if deadline else None,
            "trace_id": trace.trace_id if trace else None,
        }

    @router.get("/conflict")
    async def conflict() -> None:
        raise Conflict("member profile not created yet", retry_after=2)

    @router.get("/down")
    async def down() -> None:
        raise UpstreamUnavailable("member is down", upstream="member", retry_after=3)

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    return create_service_app(service="test", title="test", routers=[router], **kw)  # type: ignore[arg-type]


@pytest.fixture
def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(max_body_bytes=2048), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _is_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_request_id_is_generated_echoed_and_visible_in_handlers(client: httpx.AsyncClient) -> None:
    generated = await client.get("/context")
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.json()["request_id"] == generated.headers["x-request-id"]

    given = await client.get("/context", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assert given.json()["request_id"] == "abc-123"


async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/context", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"


async def test_traceparent_continues_the_callers_trace(client: httpx.AsyncClient) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = await client.get("/context", headers={"traceparent": parent})
    assert response.json()["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


async def test_deadline_header_shortens_but_never_extends_the_budget(client: httpx.AsyncClient) -> None:
    short = (await client.get("/context", headers={DEADLINE_HEADER: "1500"})).json()["remaining"]
    assert 0 < short <= 1.5
    capped = (await client.get("/context", headers={DEADLINE_HEADER: "999999"})).json()["remaining"]
    assert 9 < capped <= 10.0


async def test_spent_deadline_fails_at_once_with_504(client: httpx.AsyncClient) -> None:
    body = _is_problem(await client.get("/context", headers={DEADLINE_HEADER: "0"}), 504)
    assert body["type"] == "https://reservations.example/problems/deadline-exceeded"


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/bookings", content=b'{"room_id": 1,', headers={"content-type": "application/json"}
    )
    _is_problem(response, 400)


async def test_wrong_types_are_a_422_problem_naming_the_field(client: httpx.AsyncClient) -> None:
    body = _is_problem(await client.post("/bookings", json={"room_id": "x", "nights": 2}), 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors[0]["loc"] == ["body", "room_id"]
    assert "input" not in errors[0]  # never echo input back (it may be a password)


async def test_body_over_the_limit_is_413_by_length_and_by_stream(client: httpx.AsyncClient) -> None:
    _is_problem(await client.post("/bookings", content=b"x" * 4096), 413)

    async def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(8):
            yield b"x" * 512

    _is_problem(await client.post("/bookings", content=chunks()), 413)


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    _is_problem(await client.get("/nowhere"), 404)
    _is_problem(await client.delete("/bookings"), 405)


async def test_domain_problems_carry_retry_after(client: httpx.AsyncClient) -> None:
    conflict = await client.get("/conflict")
    _is_problem(conflict, 409)
    assert conflict.headers["retry-after"] == "2"
    down = await client.get("/down")
    assert _is_problem(down, 503)["upstream"] == "member"
    assert down.headers["retry-after"] == "3"


async def test_unexpected_error_is_a_500_problem_without_internals(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = await client.get("/boom")
    body = _is_problem(response, 500)
    assert "secret internals" not in response.text
    assert "traceback" not in json.dumps(body).lower()
    assert any("secret internals" in (r.exc_text or str(r.exc_info)) for r in caplog.records)


async def test_readiness_fails_on_a_critical_check_only() -> None:
    async def down() -> CheckResult:
        raise ConnectionError("db unreachable")

    async def up() -> CheckResult:
        return CheckResult(True, "fine")

    def app(checks: list[ReadinessCheck]) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_service_app(service="t", title="t", readiness=checks)),
            base_url="http://test",
        )

    async with app([ReadinessCheck("db", up), info_check("breakers", lambda: {"member": "open"})]) as c:
        ready = await c.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["breakers"]["detail"] == {"member": "open"}

    async with app([ReadinessCheck("db", down)]) as c:
        not_ready = await c.get("/health/ready")
        assert not_ready.status_code == 503
        assert "db unreachable" in not_ready.json()["checks"]["db"]["detail"]
        assert (await c.get("/health/live")).status_code == 200


async def test_metrics_endpoint_counts_requests_by_route_template() -> None:
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        await client.post("/bookings", json={"room_id": 1, "nights": 1})
    async with management_client(app) as management:
        text = (await management.get("/metrics")).text
    assert 'http_requests_total{method="POST",route="/bookings",service="test",status="200"}' in text


def test_json_log_lines_carry_service_and_request_id() -> None:
    token = request_id_var.set("rid-1")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        record.status = 201
        line = json.loads(JsonFormatter("room").format(record))
    finally:
        request_id_var.reset(token)
    assert line["service"] == "room"
    assert line["request_id"] == "rid-1"
    assert line["message"] == "hello world"
    assert line["status"] == 201
