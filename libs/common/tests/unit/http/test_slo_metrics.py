"""The metrics the SLO alerts read (deploy/prometheus/rules): breaker transitions, bulkhead use."""

from __future__ import annotations

import asyncio
import uuid

from common.http import Bulkhead, BulkheadFull, CircuitBreaker

from .conftest import metric
from .test_breaker import POLICY


def transitions(service: str, upstream: str, to: str) -> float:
    return metric("circuit_breaker_transitions_total", service=service, upstream=upstream, to=to)


def test_each_breaker_transition_is_counted_by_the_state_entered(clock) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"  # the registry is process-wide: labels of our own
    breaker = CircuitBreaker("member", POLICY, service=service, clock=clock)
    assert [transitions(service, "member", to) for to in ("closed", "half_open", "open")] == [0, 0, 0]

    for permit in [breaker.admit() for _ in range(3)]:
        breaker.record(permit, ok=False)
    assert transitions(service, "member", "open") == 1
    clock.advance(30)
    breaker.record(breaker.admit(), ok=False)  # the probe fails: half-open, then open again
    clock.advance(30)
    breaker.record(breaker.admit(), ok=True)  # this probe closes it

    assert transitions(service, "member", "open") == 2
    assert transitions(service, "member", "half_open") == 2
    assert transitions(service, "member", "closed") == 1
    assert metric("circuit_breaker_state", service=service, upstream="member") == 0


async def test_bulkhead_exports_its_capacity_and_the_slots_in_use() -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    labels = {"service": service, "upstream": "inventory"}
    bulkhead = Bulkhead("inventory", 2, service=service)
    assert metric("bulkhead_capacity", **labels) == 2
    assert metric("bulkhead_in_use", **labels) == 0
    release = asyncio.Event()
    inside = asyncio.Queue[None]()

    async def call() -> None:
        with bulkhead.slot():
            inside.put_nowait(None)
            await release.wait()

    tasks = [asyncio.create_task(call()) for _ in range(2)]
    for _ in tasks:
        await inside.get()
    assert metric("bulkhead_in_use", **labels) == 2
    try:
        with bulkhead.slot():
            raise AssertionError("a third slot")
    except BulkheadFull:
        pass
    assert metric("bulkhead_in_use", **labels) == 2  # a rejection takes no slot
    release.set()
    await asyncio.gather(*tasks)
    assert metric("bulkhead_in_use", **labels) == 0


async def test_the_service_client_labels_its_bulkhead_with_the_caller(make_client) -> None:
    client, _ = make_client(200, max_concurrent=3)
    labels = {"service": client.caller, "upstream": client.upstream}
    assert metric("bulkhead_capacity", **labels) == 3
    assert (await client.get("/holds")).status_code == 200
    assert metric("bulkhead_in_use", **labels) == 0
