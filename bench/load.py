"""Load generators: a fixed-rate open loop and a closed loop, over one pooled asyncio client.

An open loop sends on a schedule whatever the answers do (what users do; latency includes any
queueing); a closed loop keeps N requests in flight (what a load test does; it measures
throughput). Latency is measured from the scheduled send time in the open loop, so a stalled
server can't hide its queue (coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
"""Sends request number ``i`` with the client and returns its response."""


@dataclass
class Samples:
    """Latencies (s) of the answers, by status class; errors are transport failures."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0

    def add(self, latency: float, status: int) -> None:
        self.latencies.append(latency)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def count(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in milliseconds, nearest rank; 0.0 without samples."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] * 1000

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.count,
            "rps": round(self.count / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(self.percentile(0.50), 2),
            "p99_ms": round(self.percentile(0.99), 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
        }


def client(base_url: str, connections: int = 64, timeout: float = 30.0) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout)


async def _timed(http: httpx.AsyncClient, send: Request, i: int, started: float, out: Samples) -> None:
    try:
        response = await send(http, i)
    except httpx.HTTPError:
        out.errors += 1
        return
    out.add(time.perf_counter() - started, response.status_code)


async def open_loop(http: httpx.AsyncClient, send: Request, rate: float, duration: float) -> Samples:
    """Send ``rate`` requests per second for ``duration`` s on a fixed schedule."""
    out = Samples()
    tasks: list[asyncio.Task[None]] = []
    begin = time.perf_counter()
    total = max(1, int(rate * duration))
    for i in range(total):
        scheduled = begin + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_timed(http, send, i, scheduled, out)))
    await asyncio.gather(*tasks)
    out.elapsed = time.perf_counter() - begin
    return out


async def closed_loop(http: httpx.AsyncClient, send: Request, connections: int, duration: float) -> Samples:
    """Keep ``connections`` requests in flight for ``duration`` s."""
    out = Samples()
    counter = iter(range(10**9))
    end = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < end:
            await _timed(http, send, next(counter), time.perf_counter(), out)

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    out.elapsed = time.perf_counter() - begin
    return out
