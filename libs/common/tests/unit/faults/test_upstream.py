"""The outgoing fault transport, under a real ServiceClient, over a fake upstream."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from common.errors import UpstreamUnavailable
from common.faults import FaultSpec, FaultTransport, Switchboard
from common.http import RetryPolicy, ServiceClient


def _spec(**fields: Any) -> FaultSpec:
    return FaultSpec.model_validate(fields)


class Upstream:
    """A fake member service that records what reached it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.transport = httpx.MockTransport(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={"member_id": "m1"})


@pytest.fixture
def board() -> Switchboard:
    return Switchboard("t-upstream")


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


def _client(board: Switchboard, upstream: Upstream, **kw: Any) -> ServiceClient:
    options: dict[str, Any] = {"caller": "room", "timeout": 0.5, "retry": RetryPolicy(max_attempts=1)}
    options.update(kw)
    transport = FaultTransport(upstream.transport, board, "member")
    return ServiceClient("member", "http://member", transport=transport, **options)


async def test_no_switch_the_call_goes_through(board: Switchboard, upstream: Upstream) -> None:
    board.set("other", _spec(kind="error", where="upstream", match="inventory"))
    async with _client(board, upstream) as client:
        assert (await client.get("/internal/members/m1")).status_code == 200
    assert upstream.seen == ["GET /internal/members/m1"]


async def test_error_never_reaches_the_upstream_and_is_a_failure_to_the_client(
    board: Switchboard, upstream: Upstream
) -> None:
    board.set("down", _spec(kind="error", where="upstream", match="member"))
    # Even a client that passes problems on as answers counts it as an outage (a plain 503).
    async with _client(board, upstream, problems_are_answers=True) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.get("/internal/members/m1")
    assert upstream.seen == []


async def test_drop_is_a_transport_error(board: Switchboard, upstream: Upstream) -> None:
    board.set("cut", _spec(kind="drop", where="upstream", match="member"))
    transport = FaultTransport(upstream.transport, board, "member")
    async with httpx.AsyncClient(transport=transport, base_url="http://member") as raw:
        with pytest.raises(httpx.RemoteProtocolError, match="'cut'"):
            await raw.get("/x")
    async with _client(board, upstream) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.get("/x")
    assert upstream.seen == []


async def test_latency_delays_the_call_and_the_clients_timeout_still_applies(
    board: Switchboard, upstream: Upstream
) -> None:
    board.set(
        "slow", _spec(kind="latency", where="upstream", match="member", latency_ms=200, methods=["GET"])
    )
    async with _client(board, upstream, timeout=5) as client:
        started = time.monotonic()
        assert (await client.get("/a")).status_code == 200
        assert time.monotonic() - started >= 0.2
        assert (await client.post("/b")).status_code == 200  # not a GET: not delayed, still sent
    board.set("slower", _spec(kind="latency", where="upstream", match="member", latency_ms=60_000))
    async with _client(board, upstream, timeout=0.2) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.post("/c")
    assert upstream.seen == ["GET /a", "POST /b"]


async def test_hang_lasts_while_the_switch_is_set(board: Switchboard, upstream: Upstream) -> None:
    board.set("stuck", _spec(kind="hang", where="upstream", match="member"))
    async with _client(board, upstream, timeout=0.3) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.get("/a")
    async with _client(board, upstream, timeout=30) as client:
        call = asyncio.ensure_future(client.get("/b"))
        await asyncio.sleep(0.3)
        assert not call.done()
        board.delete("stuck")
        assert (await asyncio.wait_for(call, 10)).status_code == 200
    assert upstream.seen == ["GET /b"]


async def test_admin_calls_pass_untouched(board: Switchboard, upstream: Upstream) -> None:
    board.set("cut", _spec(kind="drop", where="upstream", match="*"))
    async with _client(board, upstream) as client:
        assert (await client.delete("/admin/faults/cut")).status_code == 200
    assert upstream.seen == ["DELETE /admin/faults/cut"]
