"""ServiceClient over several instances: balancing, failover, outlier ejection, re-admission.

Fakes only: every instance is a scripted handler behind one httpx.MockTransport, routed by the
request's host and port; the clock and sleep are the fake ones of conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from common.errors import UpstreamUnavailable
from common.http import BreakerPolicy, CircuitOpen, OutlierPolicy, RetryPolicy, ServiceClient
from common.http.client import UpstreamOutcomeUnknown
from common.http.discovery import Discovery

A, B, C = "http://10.0.0.1:8003", "http://10.0.0.2:8003", "http://10.0.0.3:8003"
# The breaker would open at the first failure, were it told: proves when it is not.
TOUCHY = BreakerPolicy(failure_rate=1, minimum_calls=1, window="count", window_size=1, ttl=30)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response", request=request)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"path": request.url.path})


class Instances:
    """Fake instances by base URL: each answers with its current behaviour; requests are logged."""

    def __init__(self, **behaviours: Callable[[httpx.Request], httpx.Response]) -> None:
        self.behaviour = {url: behaviours.get(name, ok) for name, url in (("a", A), ("b", B), ("c", C))}
        self.log: list[tuple[str, str]] = []  # (instance, path)

    def handle(self, request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        self.log.append((base, request.url.path))
        return self.behaviour[base](request)

    def calls(self, base: str, path: str | None = None) -> int:
        return sum(1 for b, p in self.log if b == base and (path is None or p == path))


@pytest.fixture
async def make(clock, sleep) -> AsyncIterator[Callable[..., tuple[ServiceClient, Instances]]]:
    clients: list[ServiceClient] = []

    def build(
        urls: str = f"{A},{B}", instances: Instances | None = None, **kwargs: Any
    ) -> tuple[ServiceClient, Instances]:
        instances = instances or Instances()
        kwargs.setdefault("caller", f"test-{uuid.uuid4().hex[:8]}")
        kwargs.setdefault("rng", random.Random(7))
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("sleep", sleep)
        client = ServiceClient("room", urls, transport=httpx.MockTransport(instances.handle), **kwargs)
        clients.append(client)
        return client, instances

    yield build
    for client in clients:
        await client.aclose()


async def settle() -> None:
    """Let background probes run (they are tasks on this loop)."""
    for _ in range(5):
        await asyncio.sleep(0)


# -- balancing -------------------------------------------------------------------------------


async def test_calls_are_spread_over_the_instances_in_turn(make):
    client, fake = make(f"{A},{B},{C}")

    for _ in range(9):
        assert (await client.get("/rooms")).status_code == 200

    assert [fake.calls(u) for u in (A, B, C)] == [3, 3, 3]
    assert client.state.instances == {A: "in", B: "in", C: "in"}


async def test_least_outstanding_sends_the_next_calls_to_the_idle_instance(make, gate):
    entered, release, slow = gate()
    seen: list[str] = []

    async def route(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.scheme}://{request.url.host}:{request.url.port}")
        if len(seen) == 1:
            return await slow(request)  # held until released: one call in flight there
        return httpx.Response(200)

    client, _ = make()
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(route))
    in_flight = asyncio.create_task(client.get("/slow"))
    await entered.wait()
    for _ in range(4):
        await client.get("/fast")
    release.set()
    await in_flight

    busy, idle = seen[0], ({A, B} - {seen[0]}).pop()
    assert seen[1:] == [idle] * 4
    assert busy != idle


async def test_round_robin_ignores_calls_in_flight(make, gate):
    entered, release, slow = gate()
    seen: list[str] = []

    async def route(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.scheme}://{request.url.host}:{request.url.port}")
        if len(seen) == 1:
            return await slow(request)
        return httpx.Response(200)

    client, _ = make(outliers=OutlierPolicy(strategy="round-robin"))
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(route))
    in_flight = asyncio.create_task(client.get("/slow"))
    await entered.wait()
    for _ in range(4):
        await client.get("/fast")
    release.set()
    await in_flight

    first, second = seen[0], seen[1]
    assert first != second
    assert seen == [first, second] * 2 + [first]  # strictly in turn, busy or not


# -- failover --------------------------------------------------------------------------------


async def test_a_refused_connection_is_retried_on_the_other_instance_at_once(make, sleep):
    client, fake = make(instances=Instances(a=refused))

    for _ in range(2):  # one of the two first calls starts at A
        assert (await client.get("/rooms")).status_code == 200

    assert fake.calls(A) >= 1
    assert sleep.slept == []  # failover needs no backoff


async def test_a_keyed_post_broken_mid_way_is_retried_on_another_instance(make):
    client, fake = make(instances=Instances(a=dropped), breaker=TOUCHY)

    for i in range(4):
        response = await client.post("/reservations", json={}, idempotency_key=f"k{i}")
        assert response.status_code == 200

    assert fake.calls(A) >= 1
    assert client.state.breaker == "closed"
    keys = {r for b, r in fake.log}
    assert keys == {"/reservations"}


async def test_an_unkeyed_post_goes_to_another_instance_only_when_the_first_refused_the_connection(make):
    client, fake = make(instances=Instances(a=refused))
    for _ in range(2):
        assert (await client.post("/things", json={})).status_code == 200  # never sent to A: safe

    client, fake = make(instances=Instances(a=dropped))
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append((await client.post("/things", json={})).status_code)
        except UpstreamOutcomeUnknown:
            outcomes.append("unknown")  # A may have applied it: not sent again
    assert sorted(map(str, outcomes)) == ["200", "unknown"]
    assert fake.calls(A) == 1


async def test_every_instance_failing_is_still_a_503_after_the_usual_attempts(make):
    client, fake = make(instances=Instances(a=refused, b=refused))

    with pytest.raises(UpstreamUnavailable):
        await client.get("/rooms")

    assert fake.calls(A) + fake.calls(B) == 3  # max_attempts, spread over both
    assert fake.calls(A) >= 1
    assert fake.calls(B) >= 1


# -- outlier detection and the breaker -------------------------------------------------------


async def test_a_dead_instance_is_ejected_and_the_breaker_stays_closed(make, sample):
    client, fake = make(instances=Instances(a=refused), breaker=TOUCHY)

    for _ in range(20):
        assert (await client.get("/rooms")).status_code == 200

    assert client.state.instances == {A: "ejected", B: "in"}
    assert fake.calls(A) == 3  # consecutive_failures, then no more
    assert client.state.breaker == "closed"
    labels = {"service": client.caller, "upstream": "room"}
    assert sample("upstream_ejections_total", **labels) == 1
    assert sample("upstream_instances_in_rotation", **labels) == 1


async def test_the_last_instance_is_never_ejected_and_its_failures_open_the_breaker(make):
    client, _ = make(
        instances=Instances(a=refused, b=refused),
        breaker=BreakerPolicy(failure_rate=1, minimum_calls=3, window="count", window_size=3, ttl=30),
        retry=RetryPolicy(max_attempts=1),
    )

    for _ in range(20):
        with pytest.raises(UpstreamUnavailable):
            await client.get("/rooms")
        if client.state.breaker == "open":
            break

    assert client.state.breaker == "open"
    assert sorted(client.state.instances.values()) == ["ejected", "in"]
    with pytest.raises(CircuitOpen):
        await client.get("/rooms")


async def test_5xx_eject_an_instance_but_a_passed_on_problem_does_not(make):
    def bare_500(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text="Internal Server Error")

    def problem_503(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503, json={"title": "member down"}, headers={"content-type": "application/problem+json"}
        )

    client, _ = make(instances=Instances(a=bare_500), retry=RetryPolicy(max_attempts=1))
    failed = 0
    for _ in range(10):
        try:
            await client.post("/x", json={})
        except UpstreamUnavailable:  # an unretried 500 (POST without key) from A
            failed += 1
    assert client.state.instances[A] == "ejected"
    assert failed == 3

    client, _ = make(instances=Instances(a=problem_503), problems_are_answers=True)
    for _ in range(10):
        await client.get("/x")  # A's problems come back as answers: it is alive
    assert client.state.instances == {A: "in", B: "in"}


async def test_a_success_ends_the_row_of_failures(make):
    answers = iter([503, 200, 503, 503, 200] * 10)

    def flaky(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers))

    client, _ = make(f"{A},{B}", instances=Instances(a=flaky), retry=RetryPolicy(max_attempts=1))
    for _ in range(20):
        with contextlib.suppress(UpstreamUnavailable):
            await client.get("/x")
    assert client.state.instances[A] == "in"  # never 3 failures in a row


# -- re-admission ----------------------------------------------------------------------------


async def test_an_ejected_instance_comes_back_after_its_readiness_probe(make, clock):
    fake = Instances(a=refused)
    client, _ = make(instances=fake, outliers=OutlierPolicy(base_ejection_s=5))
    for _ in range(6):
        await client.get("/rooms")
    assert client.state.instances[A] == "ejected"

    fake.behaviour[A] = ok  # A is back
    clock.advance(4.9)
    await client.get("/rooms")
    assert fake.calls(A, "/health/ready") == 0  # not before its ejection ends
    clock.advance(0.2)
    await client.get("/rooms")  # starts the probe; this call still goes to B
    await settle()

    assert fake.calls(A, "/health/ready") == 1
    assert client.state.instances[A] == "in"
    before = fake.calls(A, "/rooms")
    for _ in range(4):
        await client.get("/rooms")
    assert fake.calls(A, "/rooms") - before == 2


async def test_a_failed_probe_ejects_it_again_for_longer(make, clock):
    fake = Instances(a=refused)
    client, _ = make(instances=fake, outliers=OutlierPolicy(base_ejection_s=5, max_ejection_s=12))
    for _ in range(6):
        await client.get("/rooms")

    clock.advance(5)
    await client.get("/rooms")
    await settle()
    assert fake.calls(A, "/health/ready") == 1
    assert client.state.instances[A] == "ejected"  # second ejection: 10 s

    clock.advance(9.9)
    await client.get("/rooms")
    await settle()
    assert fake.calls(A, "/health/ready") == 1
    clock.advance(0.1)
    await client.get("/rooms")
    await settle()
    assert fake.calls(A, "/health/ready") == 2  # third ejection: capped at 12 s
    clock.advance(11.9)
    await client.get("/rooms")
    await settle()
    assert fake.calls(A, "/health/ready") == 2


async def test_without_a_probe_path_the_ejection_interval_alone_readmits(make, clock):
    fake = Instances(a=refused)
    client, _ = make(instances=fake, outliers=OutlierPolicy(base_ejection_s=5, probe_path=None))
    for _ in range(6):
        await client.get("/rooms")
    fake.behaviour[A] = ok

    clock.advance(5)
    for _ in range(4):
        await client.get("/rooms")

    assert fake.calls(A, "/health/ready") == 0
    assert client.state.instances[A] == "in"
    assert fake.calls(A, "/rooms") >= 1 + 3


# -- discovery -------------------------------------------------------------------------------


async def test_dns_names_become_one_instance_per_address_with_the_name_as_host(make, clock):
    addresses = {"room": ["10.0.0.1", "10.0.0.2"]}
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return addresses[host]

    hosts: list[str] = []
    fake = Instances()

    def route(request: httpx.Request) -> httpx.Response:
        hosts.append(request.headers["host"])
        return fake.handle(request)

    source = Discovery("dns+http://room:8003", refresh_s=5, resolver=resolver, clock=clock)
    client, _ = make(source, instances=fake)
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(route))

    for _ in range(4):
        await client.get("/rooms")
    assert (fake.calls(A), fake.calls(B), set(hosts), lookups) == (2, 2, {"room:8003"}, ["room"])

    addresses["room"] = ["10.0.0.3"]  # scaled: the old pods are gone
    clock.advance(5)
    await client.get("/rooms")
    assert fake.calls(C) == 1
    assert list(client.state.instances) == [f"{C} (room:8003)"]


async def test_a_failed_lookup_keeps_the_known_addresses(clock):
    answers: list[Any] = [["10.0.0.1"], OSError("no DNS")]

    async def resolver(host: str, port: int) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    source = Discovery("dns+http://room:8003", refresh_s=1, resolver=resolver, clock=clock)
    assert [e.url for e in await source.endpoints()] == [A]
    clock.advance(1)
    assert [e.url for e in await source.endpoints()] == [A]


@pytest.mark.parametrize(
    "value",
    ["", " , ", "room:8003", "ftp://room", "http://room:8003/?x=1", "dns+https://room:8443"],
)
def test_bad_upstream_urls_are_refused(value):
    with pytest.raises(ValueError):  # noqa: PT011 - each names its own reason
        Discovery(value)


def test_a_url_list_is_split_and_trimmed():
    source = Discovery(f" {A}/ , {B} ,")
    assert [e.url for e in source._static] == [A, B]
