"""ServiceClient as a whole: fallback, health state, outcomes, cancellation."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from common.context import Deadline, deadline_var
from common.errors import DeadlineExceeded, ProblemError, UpstreamUnavailable
from common.http import BreakerPolicy, BulkheadFull, CircuitOpen, RetryPolicy, ServiceClient

ONE_SHOT = RetryPolicy(max_attempts=1)


class Fallback:
    """Stands in with an empty list and remembers why it was needed."""

    def __init__(self) -> None:
        self.problems: list[ProblemError] = []

    async def __call__(self, problem: ProblemError) -> httpx.Response:
        self.problems.append(problem)
        return httpx.Response(200, json=[])


async def test_fallback_replaces_an_exhausted_call(make_client):
    client, upstream = make_client(503)
    fallback = Fallback()

    response = await client.get("/holds", fallback=fallback)

    assert response.json() == []
    assert upstream.calls == 3  # retries first, fallback last
    assert [p.status for p in fallback.problems] == [503]
    assert isinstance(fallback.problems[0], UpstreamUnavailable)


async def test_fallback_replaces_a_rejection_by_the_open_breaker(make_client):
    client, upstream = make_client(
        503,
        retry=ONE_SHOT,
        breaker=BreakerPolicy(failure_rate=1, minimum_calls=1, window="count", window_size=1),
    )
    with pytest.raises(UpstreamUnavailable):
        await client.get("/holds")
    fallback = Fallback()

    response = await client.get("/holds", fallback=fallback)

    assert response.json() == []
    assert upstream.calls == 1
    assert [type(p) for p in fallback.problems] == [CircuitOpen]


async def test_fallback_replaces_a_rejection_by_the_full_bulkhead(make_client, gate):
    entered, release, slow = gate()
    client, _ = make_client(slow, max_concurrent=1)
    in_flight = asyncio.create_task(client.get("/holds"))
    await entered.wait()
    fallback = Fallback()

    response = await client.get("/holds", fallback=fallback)

    assert response.json() == []
    assert [type(p) for p in fallback.problems] == [BulkheadFull]
    release.set()
    await in_flight


async def test_fallback_replaces_a_deadline_problem(make_client):
    deadline_var.set(Deadline.after(0))
    client, _ = make_client(200)
    fallback = Fallback()

    await client.get("/holds", fallback=fallback)

    assert [type(p) for p in fallback.problems] == [DeadlineExceeded]


@pytest.mark.parametrize("status", [200, 404])
async def test_fallback_is_not_used_for_answers(make_client, status):
    client, _ = make_client(status)
    fallback = Fallback()

    response = await client.get("/holds", fallback=fallback)

    assert response.status_code == status
    assert fallback.problems == []


async def test_outcomes_are_counted_once_per_call(make_client, outcome):
    client, _ = make_client(503, 200, 404, 500, retry=RetryPolicy(max_attempts=2))

    await client.get("/a")  # 503 then 200: one call, one success
    await client.get("/b")
    with pytest.raises(UpstreamUnavailable):
        await client.get("/c")

    assert outcome(client, "success") == 1
    assert outcome(client, "client_error") == 1
    assert outcome(client, "error") == 1


async def test_state_shows_breaker_and_in_flight(make_client, gate):
    entered, release, slow = gate()
    client, _ = make_client(slow)
    assert client.state.breaker == "closed"
    assert client.state.upstream == "inventory"

    call = asyncio.create_task(client.get("/holds"))
    await entered.wait()
    assert client.state.in_flight == 1
    release.set()
    await call
    assert client.state.in_flight == 0


async def test_a_cancelled_call_frees_its_bulkhead_slot_and_probe(make_client, clock, gate):
    client, upstream = make_client(
        503,
        retry=ONE_SHOT,
        breaker=BreakerPolicy(failure_rate=1, minimum_calls=1, window="count", window_size=1, ttl=5),
    )
    with pytest.raises(UpstreamUnavailable):
        await client.get("/holds")
    entered, _, slow = gate()
    upstream.script = [slow]
    clock.advance(5)

    probe = asyncio.create_task(client.get("/holds"))
    await entered.wait()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    assert client.state.in_flight == 0
    assert client.state.breaker == "half-open"  # a cancellation says nothing about the upstream
    upstream.script = [200]
    assert (await client.get("/holds")).status_code == 200  # the next caller becomes the probe
    assert client.state.breaker == "closed"


async def test_base_url_params_and_json_reach_the_upstream(make_client):
    client, upstream = make_client(201)

    await client.put("/holds/7", json={"nights": 2}, params={"dry_run": "true"})
    await client.delete("/holds/7")

    put, delete = upstream.requests
    assert put.method == "PUT"
    assert str(put.url) == "http://inventory.test/holds/7?dry_run=true"
    assert put.content == b'{"nights":2}'
    assert delete.method == "DELETE"


async def test_client_closes_its_pool():
    async with ServiceClient(
        "inventory",
        "http://inventory.test",
        caller="room",
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    ) as client:
        assert (await client.get("/holds")).status_code == 200
    with pytest.raises(RuntimeError):
        await client.get("/holds")
