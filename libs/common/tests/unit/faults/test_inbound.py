"""The inbound fault middleware on a platform app, in-process (ASGI transport)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from common.app_factory import create_service_app
from common.faults import FaultSpec, Switchboard


def _spec(**fields: Any) -> FaultSpec:
    return FaultSpec.model_validate(fields)


def _app(board: Switchboard | None, served: list[str]) -> FastAPI:
    router = APIRouter()

    @router.api_route("/internal/holds", methods=["GET", "POST"])
    async def holds() -> dict[str, str]:
        served.append("holds")
        return {"ok": "holds"}

    @router.get("/admin/faults")
    async def admin() -> dict[str, str]:
        served.append("admin")
        return {"ok": "admin"}

    return create_service_app(
        service="t-inbound", title="t", routers=[router], state={"faults": board} if board else {}
    )


@pytest.fixture
def board() -> Switchboard:
    return Switchboard("t-inbound")


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_no_switch_no_board_nothing_changes(board: Switchboard) -> None:
    served: list[str] = []
    for app in (_app(board, served), _app(None, served)):
        async with _client(app) as client:
            assert (await client.get("/internal/holds")).status_code == 200
    assert served == ["holds", "holds"]


async def test_error_is_a_problem_with_the_switchs_status(board: Switchboard) -> None:
    served: list[str] = []
    board.set("boom", _spec(kind="error", where="inbound", match="/internal/holds"))
    board.set("teapot", _spec(kind="error", where="inbound", match="/other", status=418))
    async with _client(_app(board, served)) as client:
        response = await client.post("/internal/holds", headers={"X-Request-ID": "r-1"})
        other = await client.get("/other")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["type"].endswith("/fault-injected")
    assert "'boom'" in body["detail"]
    assert body["request_id"] == "r-1" == response.headers["x-request-id"]  # inside the request context
    assert other.status_code == 418
    assert "retry-after" not in other.headers
    assert served == []


async def test_latency_delays_the_request_then_serves_it(board: Switchboard) -> None:
    served: list[str] = []
    board.set("slow", _spec(kind="latency", where="inbound", match="/internal", latency_ms=300))
    async with _client(_app(board, served)) as client:
        started = time.monotonic()
        response = await client.get("/internal/holds")
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert served == ["holds"]
    assert elapsed >= 0.3


async def test_only_the_chosen_methods_are_hit(board: Switchboard) -> None:
    served: list[str] = []
    board.set("post", _spec(kind="error", where="inbound", match="/internal/holds", methods=["POST"]))
    async with _client(_app(board, served)) as client:
        assert (await client.get("/internal/holds")).status_code == 200
        assert (await client.post("/internal/holds")).status_code == 503


async def test_the_admin_api_is_never_faulted(board: Switchboard) -> None:
    served: list[str] = []
    board.set("all", _spec(kind="error", where="inbound", match="*"))
    async with _client(_app(board, served)) as client:
        assert (await client.get("/admin/faults")).status_code == 200
        assert (await client.get("/internal/holds")).status_code == 503


async def test_hang_answers_nothing_until_the_switch_is_deleted_then_serves(board: Switchboard) -> None:
    served: list[str] = []
    board.set("stuck", _spec(kind="hang", where="inbound", match="/internal/holds"))
    async with _client(_app(board, served)) as client:
        call = asyncio.ensure_future(client.post("/internal/holds", json={"body": "kept"}))
        await asyncio.sleep(0.3)
        assert not call.done()
        assert served == []
        board.delete("stuck")
        response = await asyncio.wait_for(call, timeout=10)
    assert response.status_code == 200
    assert served == ["holds"]


async def test_hang_ends_when_the_client_gives_up(board: Switchboard) -> None:
    served: list[str] = []
    board.set("stuck", _spec(kind="hang", where="inbound", match="*"))
    async with _client(_app(board, served)) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get("/internal/holds"), timeout=0.3)
    assert served == []
    assert board.get("stuck") is not None  # the switch stays until its TTL
