"""Bulkhead: a cap on in-flight calls per upstream that fails fast instead of queueing."""

from __future__ import annotations

import asyncio

import pytest

from common.http import Bulkhead, BulkheadFull


async def test_third_call_fails_fast_while_two_are_in_flight(make_client, gate, outcome):
    entered, release, slow = gate(arrivals=2)
    client, upstream = make_client(slow, max_concurrent=2)
    in_flight = [asyncio.create_task(client.get("/holds/1")) for _ in range(2)]
    await entered.wait()
    assert client.state.in_flight == 2

    with pytest.raises(BulkheadFull) as rejected:
        await client.get("/holds/1")

    assert rejected.value.status == 503
    assert rejected.value.headers["Retry-After"] == "1"
    assert upstream.calls == 2  # the rejected call never reached the upstream
    assert outcome(client, "rejected_bulkhead") == 1
    release.set()
    assert [r.status_code for r in await asyncio.gather(*in_flight)] == [200, 200]
    assert client.state.in_flight == 0
    assert (await client.get("/holds/1")).status_code == 200
    assert upstream.calls == 3


def test_slot_is_released_when_the_call_fails():
    bulkhead = Bulkhead("inventory", 1)

    with pytest.raises(RuntimeError), bulkhead.slot():
        raise RuntimeError("upstream exploded")

    assert bulkhead.in_flight == 0
    with bulkhead.slot():
        assert bulkhead.in_flight == 1


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Bulkhead("inventory", 0)
