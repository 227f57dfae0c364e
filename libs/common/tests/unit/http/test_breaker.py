"""Circuit breaker: open at a failure rate over a window, fail fast while open, one probe."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from common.context import Deadline, deadline_var
from common.errors import DeadlineExceeded, UpstreamUnavailable
from common.http import BreakerPolicy, BulkheadFull, CircuitBreaker, CircuitOpen, RetryPolicy

ONE_SHOT = RetryPolicy(max_attempts=1)  # one call = one attempt, so counts are easy to read
# Three calls at least, two thirds of them failed: three failures in a row open it.
POLICY = BreakerPolicy(failure_rate=0.6, minimum_calls=3, window="count", window_size=10, ttl=30)
ONE_STRIKE = BreakerPolicy(failure_rate=1, minimum_calls=1, window="count", window_size=1, ttl=5)


async def fail(client, times: int) -> None:
    for _ in range(times):
        with pytest.raises(UpstreamUnavailable):
            await client.get("/holds")


async def succeed(client, times: int) -> None:
    for _ in range(times):
        assert (await client.get("/holds")).status_code == 200


async def test_opens_once_the_window_holds_minimum_calls_at_the_failure_rate(make_client, sample):
    client, upstream = make_client(503, retry=ONE_SHOT, breaker=POLICY)

    await fail(client, 2)
    assert client.state.breaker == "closed"
    await fail(client, 1)

    assert client.state.breaker == "open"
    assert upstream.calls == 3
    gauge = sample("circuit_breaker_state", service=client.caller, upstream="inventory")
    assert gauge == 2


async def test_open_circuit_rejects_without_calling(make_client, clock, outcome):
    client, upstream = make_client(503, retry=ONE_SHOT, breaker=POLICY)
    await fail(client, 3)

    with pytest.raises(CircuitOpen) as first:
        await client.get("/holds")
    clock.advance(20)
    with pytest.raises(CircuitOpen) as later:
        await client.get("/holds")

    assert upstream.calls == 3  # nothing reached the upstream while open
    assert first.value.status == 503
    assert first.value.headers["Retry-After"] == "30"  # time until half-open
    assert later.value.headers["Retry-After"] == "10"
    assert outcome(client, "rejected_open") == 2


async def test_a_few_failures_among_many_successes_do_not_open(make_client):
    # Issue 7: a burst made 5 calls in a row time out and a consecutive count opened the
    # circuit to a healthy upstream. 5 of 25 is a 20% failure rate.
    policy = BreakerPolicy(failure_rate=0.5, minimum_calls=10, window="count", window_size=50, ttl=30)
    client, _ = make_client(*[200] * 20, 503, retry=ONE_SHOT, breaker=policy)
    await succeed(client, 20)

    await fail(client, 5)

    assert client.state.breaker == "closed"


async def test_successes_in_between_do_not_hide_a_mostly_failing_upstream(make_client):
    # Three in four calls fail, never three in a row (what a consecutive count needed).
    client, upstream = make_client(503, 503, 200, 503, retry=ONE_SHOT, breaker=POLICY)
    await fail(client, 2)
    await succeed(client, 1)

    await fail(client, 1)

    assert client.state.breaker == "open"
    assert upstream.calls == 4


async def test_a_count_window_remembers_the_last_n_calls_only(make_client):
    policy = BreakerPolicy(failure_rate=0.5, minimum_calls=4, window="count", window_size=4, ttl=30)
    client, _ = make_client(503, 503, 200, 200, 200, 200, 503, retry=ONE_SHOT, breaker=policy)
    await fail(client, 2)
    await succeed(client, 4)  # the two failures slid out of the window

    await fail(client, 1)  # 1 of the last 4

    assert client.state.breaker == "closed"


async def test_a_time_window_forgets_failures_older_than_its_size(make_client, clock):
    policy = BreakerPolicy(failure_rate=0.5, minimum_calls=4, window="time", window_size=10, ttl=30)
    client, _ = make_client(503, retry=ONE_SHOT, breaker=policy)
    await fail(client, 3)
    clock.advance(10.5)

    await fail(client, 1)  # alone in the window: below minimum_calls
    assert client.state.breaker == "closed"
    await fail(client, 3)
    assert client.state.breaker == "open"


def test_a_count_window_smaller_than_minimum_calls_is_refused():
    with pytest.raises(ValueError, match="minimum_calls"):
        BreakerPolicy(minimum_calls=10, window="count", window_size=5)


async def test_client_errors_are_not_failures(make_client):
    client, upstream = make_client(404, 409, 422, 400, 404, retry=ONE_SHOT, breaker=POLICY)

    statuses = [(await client.get("/holds")).status_code for _ in range(5)]

    assert statuses == [404, 409, 422, 400, 404]
    assert client.state.breaker == "closed"
    assert upstream.calls == 5


async def test_bulkhead_rejections_are_never_breaker_failures(make_client, gate):
    # Our own load shedding says nothing about the upstream: it must not open its circuit.
    entered, release, slow = gate()
    client, upstream = make_client(slow, retry=ONE_SHOT, breaker=POLICY, max_concurrent=1)
    in_flight = asyncio.create_task(client.get("/holds"))
    await entered.wait()

    for _ in range(20):
        with pytest.raises(BulkheadFull):
            await client.get("/holds")

    assert client.state.breaker == "closed"
    release.set()
    assert (await in_flight).status_code == 200
    assert upstream.calls == 1


async def test_timeouts_cut_short_by_the_callers_deadline_are_no_verdict(make_client):
    # The upstream never had its own timeout (1 s), only what was left of the caller's budget.
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    client, _ = make_client(hang, retry=ONE_SHOT, breaker=POLICY, timeout=1.0)
    for _ in range(5):
        token = deadline_var.set(Deadline.after(0.02))
        try:
            with pytest.raises(DeadlineExceeded):
                await client.get("/holds")
        finally:
            deadline_var.reset(token)

    assert client.state.breaker == "closed"


async def test_connect_errors_and_timeouts_are_failures(make_client):
    client, _ = make_client(
        httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), 500, retry=ONE_SHOT, breaker=POLICY
    )

    await fail(client, 3)

    assert client.state.breaker == "open"


async def test_half_open_lets_exactly_one_probe_through(make_client, clock, gate):
    client, upstream = make_client(
        503,
        retry=ONE_SHOT,
        breaker=BreakerPolicy(failure_rate=1, minimum_calls=2, window="count", window_size=2, ttl=10),
        max_concurrent=100,
    )
    await fail(client, 2)
    entered, release, slow = gate()
    upstream.script = [slow]  # the probe hangs in the upstream until we release it
    clock.advance(10)

    rejected: list[UpstreamUnavailable] = []
    others_done = asyncio.Event()

    async def call() -> httpx.Response:
        try:
            response: httpx.Response = await client.get("/holds")
            return response
        except UpstreamUnavailable as exc:
            rejected.append(exc)
            if len(rejected) == 49:
                others_done.set()
            raise

    tasks = [asyncio.create_task(call()) for _ in range(50)]
    async with asyncio.timeout(5):  # a broken guard fails here instead of hanging the run
        await entered.wait()
        await others_done.wait()
    assert client.state.breaker == "half-open"
    assert upstream.calls == 3  # two failures + one probe, while 49 callers were turned away
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    answered = [r for r in results if isinstance(r, httpx.Response)]
    assert [r.status_code for r in answered] == [200]
    assert len(rejected) == 49
    assert all(isinstance(e, CircuitOpen) and e.status == 503 for e in rejected)
    assert client.state.breaker == "closed"


async def test_successful_probe_closes(make_client, clock):
    client, upstream = make_client(503, 503, 503, 200, retry=ONE_SHOT, breaker=POLICY)
    await fail(client, 3)
    clock.advance(30)

    assert (await client.get("/holds")).status_code == 200
    assert client.state.breaker == "closed"
    assert (await client.get("/holds")).status_code == 200
    assert upstream.calls == 5


async def test_a_closed_circuit_starts_with_an_empty_window(make_client, clock):
    client, _ = make_client(503, 503, 503, 200, 503, 503, retry=ONE_SHOT, breaker=POLICY)
    await fail(client, 3)
    clock.advance(30)
    await succeed(client, 1)  # the probe closes it

    await fail(client, 2)  # with the outage's failures still counted, 5 of 6 would re-open it

    assert client.state.breaker == "closed"  # 2 calls: below minimum_calls


async def test_failed_probe_reopens_for_another_ttl(make_client, clock):
    # Default retries: the failed probe must not be retried into a circuit that just re-opened.
    client, upstream = make_client(503, breaker=POLICY)
    await fail(client, 1)  # 3 attempts, 3 failures
    assert client.state.breaker == "open"
    clock.advance(30)

    await fail(client, 1)

    assert upstream.calls == 4  # the probe only
    assert client.state.breaker == "open"
    with pytest.raises(CircuitOpen) as rejected:
        await client.get("/holds")
    assert rejected.value.headers["Retry-After"] == "30"
    assert upstream.calls == 4
    clock.advance(30)
    await fail(client, 1)
    assert upstream.calls == 5  # a new probe after the new TTL


def test_each_transition_is_logged_once(clock, caplog):
    caplog.set_level(logging.INFO, logger="common.http.breaker")
    breaker = CircuitBreaker("inventory", POLICY, clock=clock)
    permits = [breaker.admit() for _ in range(5)]

    for permit in permits:  # 5 failures; open after 3: the last two land on an open circuit
        breaker.record(permit, ok=False)
    clock.advance(30)
    probe = breaker.admit()
    breaker.record(probe, ok=True)

    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "circuit to inventory opened for 30s"),
        ("INFO", "circuit to inventory is half-open"),
        ("INFO", "circuit to inventory is closed"),
    ]


def test_cancelled_probe_frees_the_slot(clock):
    breaker = CircuitBreaker("inventory", ONE_STRIKE, clock=clock)
    breaker.record(breaker.admit(), ok=False)
    clock.advance(5)

    probe = breaker.admit()
    with pytest.raises(CircuitOpen):
        breaker.admit()
    breaker.record(probe, ok=None)  # cancelled: says nothing about the upstream

    assert breaker.state == "half-open"
    assert breaker.admit().probe


def test_late_verdicts_from_an_earlier_state_are_ignored(clock):
    breaker = CircuitBreaker("inventory", ONE_STRIKE, clock=clock)
    straggler = breaker.admit()  # admitted while closed, answers much later
    breaker.record(breaker.admit(), ok=False)
    clock.advance(5)
    probe = breaker.admit()

    breaker.record(straggler, ok=True)
    with pytest.raises(CircuitOpen):  # still half-open with its probe in flight: only it decides
        breaker.admit()
    breaker.record(probe, ok=False)
    assert breaker.state == "open"
