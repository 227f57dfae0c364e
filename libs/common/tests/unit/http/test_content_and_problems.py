"""Raw bodies (``content=``) and 5xx problems as answers (``problems_are_answers=True``)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from common.errors import UpstreamUnavailable
from common.http import BreakerPolicy, RetryPolicy

POLICY = BreakerPolicy(failure_rate=1, minimum_calls=3, window="count", window_size=3, ttl=30)
MEMBER_DOWN = {
    "type": "https://reservations.example/problems/upstream-unavailable",
    "title": "Service Unavailable",
    "status": 503,
    "detail": "member unreachable: ConnectError",
    "upstream": "member",
}


def problem(status: int, body: dict[str, Any], media_type: str = "application/problem+json", **headers: str):
    """An upstream step answering ``status`` with a problem document of type ``media_type``."""

    async def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(body).encode(), headers={"Content-Type": media_type, **headers}
        )

    return handler


# -- content= -----------------------------------------------------------------------------------


async def test_content_is_sent_as_is_with_the_given_content_type(make_client):
    client, upstream = make_client(200)
    form = b"username=ada%40example.com&password=s3cret+pass"

    await client.post("/token", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})

    [sent] = upstream.requests
    assert sent.content == form
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent.headers["Content-Length"] == str(len(form))


@pytest.mark.parametrize(
    ("method", "key"), [("PUT", None), ("POST", "res-42")], ids=["idempotent", "with-key"]
)
async def test_content_is_sent_again_on_every_retry(make_client, method, key):
    client, upstream = make_client(503, httpx.ConnectError("refused"), 200)
    malformed = b'{"nights": '

    response = await client.request(method, "/holds/7", content=malformed, idempotency_key=key)

    assert response.status_code == 200
    assert [r.content for r in upstream.requests] == [malformed] * 3


async def test_json_and_content_together_are_refused(make_client, outcome):
    client, upstream = make_client(200)

    with pytest.raises(ValueError, match="json= or content="):
        await client.post("/holds", json={"nights": 2}, content=b'{"nights": 2}')

    assert upstream.calls == 0
    assert outcome(client, "success") == 0


# -- problems_are_answers -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_a_5xx_or_429_problem_is_returned_unchanged_without_retry(make_client, sleep, outcome, status):
    body = {**MEMBER_DOWN, "status": status}
    client, upstream = make_client(
        problem(status, body, **{"Retry-After": "7"}), 200, problems_are_answers=True
    )

    response = await client.get("/reservations")

    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == body
    assert response.headers["Retry-After"] == "7"
    assert upstream.calls == 1
    assert sleep.slept == []
    assert outcome(client, "upstream_problem") == 1
    assert outcome(client, "error") == 0


async def test_a_problem_with_a_charset_parameter_is_still_a_problem(make_client):
    media_type = "Application/Problem+JSON; charset=utf-8"
    client, upstream = make_client(problem(503, MEMBER_DOWN, media_type), problems_are_answers=True)

    response = await client.get("/reservations")

    assert response.status_code == 503
    assert upstream.calls == 1


async def test_problems_never_open_the_breaker_and_the_next_call_goes_through(make_client):
    client, upstream = make_client(problem(503, MEMBER_DOWN), breaker=POLICY, problems_are_answers=True)

    statuses = [(await client.get("/reservations")).status_code for _ in range(10)]
    upstream.script = [200]
    after = await client.get("/reservations")

    assert statuses == [503] * 10
    assert client.state.breaker == "closed"
    assert after.status_code == 200
    assert upstream.calls == 11


async def test_a_problem_answering_the_half_open_probe_closes_the_breaker(make_client, clock):
    client, upstream = make_client(
        httpx.ConnectError("refused"),
        retry=RetryPolicy(max_attempts=1),
        breaker=POLICY,
        problems_are_answers=True,
    )
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await client.get("/reservations")
    assert client.state.breaker == "open"
    clock.advance(30)
    upstream.script = [problem(503, MEMBER_DOWN)]

    response = await client.get("/reservations")

    assert response.status_code == 503  # the upstream is back, and it says member is down
    assert client.state.breaker == "closed"


@pytest.mark.parametrize(
    "step",
    [
        problem(503, MEMBER_DOWN, "text/plain"),
        problem(503, MEMBER_DOWN, "application/json"),
        503,
        httpx.ConnectError("refused"),
    ],
    ids=["text-503", "json-503", "bare-503", "connect-error"],
)
async def test_other_failures_are_still_retried_and_counted(make_client, outcome, step):
    client, upstream = make_client(step, breaker=POLICY, problems_are_answers=True)

    with pytest.raises(UpstreamUnavailable):
        await client.get("/reservations")

    assert upstream.calls == 3  # retried up to max_attempts
    assert client.state.breaker == "open"  # every attempt was a failure for the breaker
    assert outcome(client, "upstream_problem") == 0
    assert outcome(client, "error") + outcome(client, "timeout") == 1


async def test_by_default_a_5xx_problem_is_an_outage(make_client, outcome):
    client, upstream = make_client(problem(503, MEMBER_DOWN), breaker=POLICY)

    with pytest.raises(UpstreamUnavailable):
        await client.get("/reservations")

    assert upstream.calls == 3
    assert client.state.breaker == "open"
    assert outcome(client, "error") == 1
