"""Deadlines: the tightest of our cap, the caller's relative budget and its absolute end."""

from __future__ import annotations

import time

import httpx
from fastapi import APIRouter

from common.app_factory import create_service_app
from common.context import DEADLINE_AT_HEADER, DEADLINE_HEADER, Deadline, current_deadline

CAP = 10.0


def _at(seconds_from_now: float) -> str:
    return str(int((time.time() + seconds_from_now) * 1000))


def _budget(**headers: str) -> float:
    return Deadline.from_headers({k.lower(): v for k, v in headers.items()}, cap=CAP).remaining()


def test_no_headers_is_our_own_cap():
    assert CAP - 0.5 < _budget() <= CAP


def test_relative_budget_shortens_but_never_extends():
    assert 1.0 < _budget(**{DEADLINE_HEADER: "1500"}) <= 1.5
    assert CAP - 0.5 < _budget(**{DEADLINE_HEADER: "999999"}) <= CAP


def test_absolute_end_shortens_but_never_extends():
    assert 1.5 < _budget(**{DEADLINE_AT_HEADER: _at(2.0)}) <= 2.0
    assert CAP - 0.5 < _budget(**{DEADLINE_AT_HEADER: _at(600)}) <= CAP


def test_the_tighter_of_relative_and_absolute_wins():
    # A request sent with 5 s that waited 4.5 s in a frozen callee's socket queue: its relative
    # header still says 5000, its absolute end is 0.5 s away.
    queued = {DEADLINE_HEADER: "5000", DEADLINE_AT_HEADER: _at(0.5)}
    assert 0 < _budget(**queued) <= 0.5
    assert 0 < _budget(**{DEADLINE_HEADER: "300", DEADLINE_AT_HEADER: _at(5)}) <= 0.3


def test_an_end_in_the_past_is_a_spent_budget():
    assert Deadline.from_headers({DEADLINE_AT_HEADER.lower(): _at(-3)}, cap=CAP).expired


def test_unparsable_values_are_ignored():
    assert CAP - 0.5 < _budget(**{DEADLINE_HEADER: "soon", DEADLINE_AT_HEADER: "-1"}) <= CAP
    assert CAP - 0.5 < _budget(**{DEADLINE_HEADER: "²", DEADLINE_AT_HEADER: "9" * 5000}) <= CAP


async def test_a_request_whose_absolute_deadline_passed_while_queued_is_refused_with_504():
    # Issue 7 fault 1: the relative budget alone restarted when the frozen process woke up.
    router = APIRouter()
    reached: list[float] = []

    @router.post("/holds")
    async def hold() -> dict[str, str]:
        deadline = current_deadline()
        reached.append(deadline.remaining() if deadline else -1)
        return {"status": "held"}

    app = create_service_app(service="test", title="test", routers=[router], request_timeout_s=CAP)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        late = await client.post("/holds", headers={DEADLINE_HEADER: "2000", DEADLINE_AT_HEADER: _at(-1)})
        in_time = await client.post("/holds", headers={DEADLINE_HEADER: "2000", DEADLINE_AT_HEADER: _at(1)})

    assert late.status_code == 504
    assert late.headers["content-type"] == "application/problem+json"
    assert in_time.status_code == 200
    assert len(reached) == 1  # the late one never reached the endpoint
    assert 0 < reached[0] <= 1.0
