"""Bulkhead: a cap on concurrent calls to one upstream, failing fast instead of queueing.

A slow upstream then ties up at most ``max_concurrent`` of our requests; everything else we do
keeps working. There is deliberately no queue: a waiting caller would just hold its own
resources and burn its deadline, so it gets a 503 with ``Retry-After`` straight away.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from common.errors import UpstreamUnavailable
from common.metrics import BULKHEAD_CAPACITY, BULKHEAD_IN_USE


class BulkheadFull(UpstreamUnavailable):
    """Too many calls to this upstream are already in flight (503)."""


class Bulkhead:
    """At most ``max_concurrent`` calls in flight; the next one raises ``BulkheadFull``."""

    def __init__(self, upstream: str, max_concurrent: int, *, service: str = "") -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.upstream = upstream
        self.max_concurrent = max_concurrent
        self._in_flight = 0
        self._in_use = BULKHEAD_IN_USE.labels(service=service, upstream=upstream)
        BULKHEAD_CAPACITY.labels(service=service, upstream=upstream).set(max_concurrent)
        self._in_use.set(0)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot for the duration of the block, or fail fast when none is free."""
        # A plain counter, not asyncio.Semaphore: check-and-take has no await, so it is atomic
        # under asyncio, and there is no acquire() that could be tempted to wait.
        if self._in_flight >= self.max_concurrent:
            raise BulkheadFull(
                f"bulkhead full: {self._in_flight} calls to {self.upstream} already in flight",
                upstream=self.upstream,
                retry_after=1,
            )
        self._in_flight += 1
        self._in_use.set(self._in_flight)
        try:
            yield
        finally:
            self._in_flight -= 1
            self._in_use.set(self._in_flight)
