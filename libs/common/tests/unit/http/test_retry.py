"""Retries only where safe, with backoff or Retry-After, never beyond the deadline."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import httpx
import pytest

from common.context import Deadline, TraceContext, deadline_var, request_id_var
from common.errors import DeadlineExceeded, UpstreamUnavailable
from common.http import RetryPolicy, parse_retry_after
from common.tracing import extract, span


async def test_post_without_idempotency_key_is_sent_once(make_client, sleep):
    client, upstream = make_client(503, 200)

    with pytest.raises(UpstreamUnavailable):
        await client.post("/holds", json={"room": 1})

    assert upstream.calls == 1
    assert sleep.slept == []


async def test_post_with_idempotency_key_is_retried_with_the_same_key(make_client):
    client, upstream = make_client(503, 200)

    response = await client.post("/holds", json={"room": 1}, idempotency_key="res-42")

    assert response.status_code == 200
    assert [r.headers["Idempotency-Key"] for r in upstream.requests] == ["res-42", "res-42"]


async def test_idempotency_key_given_as_a_header_also_allows_retries(make_client):
    client, upstream = make_client(503, 200)

    response = await client.post("/holds", headers={"idempotency-key": "res-42"})

    assert response.status_code == 200
    assert upstream.calls == 2


async def test_get_is_retried_on_503_then_succeeds(make_client, sleep, sample, outcome):
    client, upstream = make_client(503, 200, retry=RetryPolicy(backoff_base=0.1))

    response = await client.get("/holds/1")

    assert response.status_code == 200
    assert upstream.calls == 2
    assert len(sleep.slept) == 1
    assert 0 <= sleep.slept[0] <= 0.1  # full jitter: anywhere from 0 to the backoff
    assert sample("upstream_retries_total", service=client.caller, upstream="inventory") == 1
    assert outcome(client, "success") == 1


@pytest.mark.parametrize(
    "step",
    [
        httpx.ConnectError("refused"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        502,
        503,
        504,
    ],
)
async def test_transient_failures_are_retried(make_client, step):
    client, upstream = make_client(step, 200)

    assert (await client.get("/holds/1")).status_code == 200
    assert upstream.calls == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_errors_are_returned_never_retried(make_client, outcome, status):
    client, upstream = make_client(status, 200)

    response = await client.get("/holds/1")

    assert response.status_code == status
    assert upstream.calls == 1
    assert outcome(client, "client_error") == 1


@pytest.mark.parametrize("step", [500], ids=["500"])
async def test_non_transient_failures_are_not_retried(make_client, step):
    client, upstream = make_client(step, 200)

    with pytest.raises(UpstreamUnavailable) as raised:
        await client.get("/holds/1")

    assert raised.value.status == 503
    assert upstream.calls == 1


async def test_broken_connection_on_post_without_key_is_not_retried(make_client):
    # The server may have acted on it before the connection broke.
    client, upstream = make_client(httpx.RemoteProtocolError("Server disconnected"), 201)

    with pytest.raises(UpstreamUnavailable):
        await client.post("/holds")

    assert upstream.calls == 1


async def test_timeout_on_post_without_key_is_not_retried(make_client):
    # The upstream may have acted on it before it went quiet.
    client, upstream = make_client(httpx.ReadTimeout("slow"), 200)

    with pytest.raises(UpstreamUnavailable):
        await client.post("/holds")

    assert upstream.calls == 1


@pytest.mark.parametrize("status", [503, 429])
async def test_retry_after_is_honoured(make_client, sleep, status):
    client, upstream = make_client((status, {"Retry-After": "2"}), 200)

    assert (await client.get("/holds/1")).status_code == 200
    assert sleep.slept == [2.0]
    assert upstream.calls == 2


async def test_retry_after_beyond_the_deadline_stops_retrying(make_client, sleep):
    deadline_var.set(Deadline.after(1.0))
    client, upstream = make_client((503, {"Retry-After": "5"}), 200)

    with pytest.raises(UpstreamUnavailable) as raised:
        await client.get("/holds/1")

    assert upstream.calls == 1
    assert sleep.slept == []
    assert raised.value.headers["Retry-After"] == "5"  # the upstream's hint reaches our caller


async def test_attempts_are_bounded_with_exponential_backoff(make_client, sleep, max_jitter):
    policy = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_cap=3.0)
    client, upstream = make_client(503, retry=policy, rng=max_jitter)

    with pytest.raises(UpstreamUnavailable) as raised:
        await client.get("/holds/1")

    assert upstream.calls == 4
    assert sleep.slept == [1.0, 2.0, 3.0]  # base * 2**n at the top of the jitter, capped
    assert raised.value.status == 503


async def test_retry_budget_limits_retries(make_client):
    client, upstream = make_client(503, retry=RetryPolicy(budget_reserve=1, budget_ratio=0.2))

    with pytest.raises(UpstreamUnavailable):
        await client.get("/holds/1")

    assert upstream.calls == 2  # one retry from the reserve, then the budget is empty


async def test_exhausted_deadline_fails_with_504_without_calling(make_client, outcome):
    deadline_var.set(Deadline(time.monotonic() - 0.01))
    client, upstream = make_client(200)

    with pytest.raises(DeadlineExceeded) as raised:
        await client.get("/holds/1")

    assert raised.value.status == 504
    assert upstream.calls == 0
    assert outcome(client, "deadline") == 1


async def test_no_retry_starts_when_the_deadline_cannot_cover_the_backoff(make_client, sleep, max_jitter):
    deadline_var.set(Deadline.after(0.05))
    client, upstream = make_client(503, 200, retry=RetryPolicy(backoff_base=0.1), rng=max_jitter)

    with pytest.raises(UpstreamUnavailable):
        await client.get("/holds/1")

    assert upstream.calls == 1
    assert sleep.slept == []


async def test_attempt_timeout_is_bounded_by_the_remaining_deadline(make_client):
    deadline_var.set(Deadline.after(0.5))
    client, upstream = make_client(200, timeout=5.0)

    await client.get("/holds/1")

    sent = upstream.requests[0]
    assert 0.3 < sent.extensions["timeout"]["read"] <= 0.5
    assert 300 < int(sent.headers["X-Deadline-Ms"]) <= 500


async def test_own_timeout_applies_without_a_deadline(make_client):
    client, upstream = make_client(200, timeout=1.5)

    await client.get("/holds/1")

    sent = upstream.requests[0]
    assert sent.extensions["timeout"]["read"] == 1.5
    assert sent.headers["X-Deadline-Ms"] == "1500"


async def test_timeout_when_the_deadline_binds_is_a_504_without_retry(make_client, outcome):
    deadline_var.set(Deadline.after(0.5))
    client, upstream = make_client(httpx.ReadTimeout("slow"), 200, timeout=5.0)

    with pytest.raises(DeadlineExceeded):
        await client.get("/holds/1")

    assert upstream.calls == 1
    assert outcome(client, "deadline") == 1


@pytest.mark.parametrize("step", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("no SYN-ACK")])
async def test_a_timed_out_attempt_is_never_followed_by_another(make_client, outcome, step):
    # Issue 7: a hung upstream cost 3 attempts x the timeout before the first 503. One timeout
    # is the whole wait now, even for requests that are safe to repeat.
    client, upstream = make_client(step, 200, timeout=1.0)

    with pytest.raises(UpstreamUnavailable) as raised:
        await client.get("/holds/1")

    assert raised.value.status == 503
    assert upstream.calls == 1
    assert outcome(client, "timeout") == 1


async def test_first_503_for_a_hung_upstream_comes_within_1_2_timeouts(make_client):
    # Real time, no fakes for the clock: the upstream accepts the request and never answers.
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    client, upstream = make_client(hang, timeout=0.3, sleep=asyncio.sleep)
    started = time.monotonic()

    with pytest.raises(UpstreamUnavailable):
        await client.put("/holds/1", idempotency_key="k")  # safe to retry, still one attempt

    assert time.monotonic() - started < 0.3 * 1.2 + 0.5  # generous slack for a loaded machine
    assert upstream.calls == 1


async def test_deadline_travels_relative_and_absolute(make_client):
    deadline_var.set(Deadline.after(2.0))
    client, upstream = make_client(200, timeout=5.0)
    before = time.time()

    await client.get("/holds/1")

    sent = upstream.requests[0].headers
    relative = int(sent["X-Deadline-Ms"]) / 1000
    absolute = int(sent["X-Deadline-At"]) / 1000
    assert 0 < relative <= 2.0
    assert before < absolute <= time.time() + 2.0
    assert abs((absolute - before) - relative) < 0.5  # the same end, told two ways


async def test_context_and_auth_headers_are_propagated(make_client):
    parent = TraceContext.new()
    request_id_var.set("req-123")
    deadline_var.set(Deadline.after(2.0))
    client, upstream = make_client(200, timeout=5.0, auth=lambda: {"Authorization": "Bearer svc"})

    with span("caller", context=extract({"traceparent": parent.header()})):
        await client.get("/holds/1", headers={"Accept": "application/json"})

    sent = upstream.requests[0].headers
    assert sent["X-Request-ID"] == "req-123"
    child = TraceContext.parse(sent["traceparent"])
    assert child is not None
    assert child.trace_id == parent.trace_id
    assert child.span_id != parent.span_id
    assert 0 < int(sent["X-Deadline-Ms"]) <= 2000
    assert sent["Authorization"] == "Bearer svc"
    assert sent["Accept"] == "application/json"


async def test_a_new_trace_is_started_when_there_is_none(make_client):
    client, upstream = make_client(200)

    await client.get("/holds/1")

    assert TraceContext.parse(upstream.requests[0].headers["traceparent"]) is not None
    assert "X-Request-ID" not in upstream.requests[0].headers


async def test_auth_headers_are_fresh_for_every_attempt(make_client):
    tokens = iter(["t1", "t2"])
    client, upstream = make_client(503, 200, auth=lambda: {"Authorization": next(tokens)})

    await client.get("/holds/1")

    assert [r.headers["Authorization"] for r in upstream.requests] == ["t1", "t2"]


def test_full_jitter_stays_within_the_capped_exponential():
    policy = RetryPolicy(backoff_base=0.5, backoff_cap=3.0)
    rng = random.Random(1)

    for retry, bound in enumerate([0.5, 1.0, 2.0, 3.0, 3.0]):
        delays = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in delays)
        assert min(delays) < bound * 0.1  # jittered from zero ...
        assert max(delays) > bound * 0.9  # ... up to the bound


def test_parse_retry_after():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:02:00 GMT", now=now) == 120.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
