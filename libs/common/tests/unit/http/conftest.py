"""Fakes for the resilient client: a scripted upstream, a fake clock and a recording sleep."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from common.http import ServiceClient

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


Step = int | tuple[int, dict[str, str]] | Exception | Handler


class Upstream:
    """A fake upstream behind httpx.MockTransport: answers from a script, records every request.

    Each request takes the next step of the script; the last step repeats. A step is a status
    code, ``(status, headers)``, an exception to raise (e.g. httpx.ConnectError) or an async
    handler. A fresh Response is built for every request.
    """

    def __init__(self, *script: Step) -> None:
        self.script = list(script) or [200]
        self.requests: list[httpx.Request] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            return httpx.Response(step)
        if isinstance(step, tuple):
            return httpx.Response(step[0], headers=step[1])
        return await step(request)


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    """Records each requested sleep and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds)


class MaxJitter(random.Random):
    """'Random' jitter that always picks the top of the range, so backoff is predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


MakeClient = Callable[..., tuple[ServiceClient, Upstream]]


@pytest.fixture
async def make_client(clock: FakeClock, sleep: FakeSleep) -> AsyncIterator[MakeClient]:
    """``client, upstream = make_client(503, 200, timeout=1)``: a client for "inventory" whose
    upstream follows that script, on the fake clock and sleep.

    Every client gets its own caller name, so its metrics start from zero.
    """
    clients: list[ServiceClient] = []

    def make(*script: Step, **kwargs: Any) -> tuple[ServiceClient, Upstream]:
        upstream = Upstream(*script)
        kwargs.setdefault("caller", f"test-{uuid.uuid4().hex[:8]}")
        kwargs.setdefault("rng", random.Random(7))
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("sleep", sleep)
        client = ServiceClient("inventory", "http://inventory.test", transport=upstream.transport(), **kwargs)
        clients.append(client)
        return client, upstream

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def max_jitter() -> random.Random:
    return MaxJitter()


def metric(name: str, **labels: str) -> float:
    """A sample's current value (0 when never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def calls(client: ServiceClient, outcome: str) -> float:
    return metric("upstream_calls_total", service=client.caller, upstream=client.upstream, outcome=outcome)


@pytest.fixture
def outcome() -> Callable[[ServiceClient, str], float]:
    """``outcome(client, "success")``: how many calls of that client ended that way."""
    return calls


@pytest.fixture
def sample() -> Callable[..., float]:
    """``sample(name, **labels)``: read any Prometheus sample."""
    return metric


@pytest.fixture
def gate() -> Callable[..., tuple[asyncio.Event, asyncio.Event, Handler]]:
    """``entered, release, slow = gate(arrivals=2)``: a slow upstream step.

    ``entered`` is set once ``arrivals`` requests are inside; they all answer 200 on ``release``.
    """

    def make(arrivals: int = 1) -> tuple[asyncio.Event, asyncio.Event, Handler]:
        entered, release = asyncio.Event(), asyncio.Event()
        inside = 0

        async def slow(request: httpx.Request) -> httpx.Response:
            nonlocal inside
            inside += 1
            if inside == arrivals:
                entered.set()
            await release.wait()
            return httpx.Response(200)

        return entered, release, slow

    return make
