"""When a failed call may still have been applied upstream: ``OutcomeUnknown`` tells the caller."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from common.context import Deadline, deadline_var
from common.errors import DeadlineExceeded, ProblemError, UpstreamUnavailable
from common.http import (
    BreakerPolicy,
    CircuitOpen,
    DeadlineOutcomeUnknown,
    OutcomeUnknown,
    RetryPolicy,
    UpstreamOutcomeUnknown,
)

ONE_SHOT = RetryPolicy(max_attempts=1)
PROBLEM = {"content-type": "application/problem+json"}


async def _raised(client, **kwargs) -> ProblemError:
    with pytest.raises(ProblemError) as raised:
        await client.post("/holds", json={}, idempotency_key="res-1", **kwargs)
    return raised.value


@pytest.mark.parametrize(
    "step",
    [httpx.ReadTimeout("slow"), httpx.ReadError("reset"), httpx.RemoteProtocolError("closed"), 500, 502],
    ids=["read-timeout", "read-error", "closed-mid-way", "bare-500", "bare-502"],
)
async def test_sent_but_unanswered_is_an_unknown_outcome_503(make_client, step):
    client, _ = make_client(step, retry=ONE_SHOT)

    problem = await _raised(client)

    assert isinstance(problem, UpstreamOutcomeUnknown)
    assert isinstance(problem, OutcomeUnknown)
    assert problem.status == 503


@pytest.mark.parametrize(
    "step",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("no answer to SYN"), (503, PROBLEM), 429],
    ids=["connect-error", "connect-timeout", "503-problem", "429"],
)
async def test_never_sent_or_refused_is_a_plain_503(make_client, step):
    client, _ = make_client(step, retry=ONE_SHOT)

    problem = await _raised(client)

    assert isinstance(problem, UpstreamUnavailable)
    assert not isinstance(problem, OutcomeUnknown)


async def test_an_unseen_attempt_keeps_the_call_unknown_after_a_refused_retry(make_client):
    # The first POST may have been applied; that the retry could not connect changes nothing.
    client, upstream = make_client(502, httpx.ConnectError("refused"))

    problem = await _raised(client)

    assert upstream.calls == 3  # connect errors are retried up to max_attempts
    assert isinstance(problem, UpstreamOutcomeUnknown)


async def test_a_later_real_answer_settles_the_outcome(make_client):
    client, upstream = make_client(502, 201)

    response = await client.post("/holds", json={}, idempotency_key="res-1")

    assert response.status_code == 201
    assert upstream.calls == 2


async def test_deadline_running_out_mid_call_is_an_unknown_outcome_504(make_client):
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    client, _ = make_client(hang, timeout=5.0)
    deadline_var.set(Deadline.after(0.05))

    problem = await _raised(client)

    assert isinstance(problem, DeadlineOutcomeUnknown)
    assert problem.status == 504


async def test_deadline_spent_before_sending_is_a_plain_504(make_client):
    client, upstream = make_client(201)
    deadline_var.set(Deadline.after(0))

    problem = await _raised(client)

    assert isinstance(problem, DeadlineExceeded)
    assert not isinstance(problem, OutcomeUnknown)
    assert upstream.calls == 0


async def test_an_open_circuit_is_a_plain_503(make_client):
    breaker = BreakerPolicy(failure_rate=1, minimum_calls=1, window="count", window_size=1)
    client, _ = make_client(httpx.ConnectError("refused"), retry=ONE_SHOT, breaker=breaker)
    await _raised(client)

    problem = await _raised(client)

    assert isinstance(problem, CircuitOpen)
    assert not isinstance(problem, OutcomeUnknown)
