"""Rate limiting: a moving window per caller, kept in memory (``limits`` parses the rule).

A moving window counts the requests of the last minute (say) at every instant, so a caller
can't fire twice the limit across a window boundary as with fixed windows. Each caller's
window is a deque of its requests' times: a hit drops the times that left the window, then
admits the request if fewer than the limit remain. It runs on the event loop, O(1) amortised
and without locks (asyncio runs one ``hit`` at a time). Why not ``limits``' own async memory
storage: it schedules a task per request that hands every key's expiry to the thread pool,
the gateway's limiter cost on each call. The counts live in this process: with several gateway
instances each counts on its own; shared counts need a shared store (Redis, e.g. ``limits``'
``RedisStorage``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import limits
from prometheus_client import Counter

RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused by the gateway's rate limit")


class RateLimiter:
    """``hit(key)``: count one request of ``key``; the seconds to wait when over the limit."""

    def __init__(self, limit: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limits.parse(limit)
        self._max = self.limit.amount
        self._window = float(self.limit.get_expiry())
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = clock() + self._window

    async def hit(self, key: str) -> float | None:
        """``None`` when the request is allowed, else the whole seconds until the window has room."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        times = self._hits.setdefault(key, deque())
        while times and times[0] <= now - self._window:
            times.popleft()
        if len(times) < self._max:
            times.append(now)
            return None
        RATE_LIMITED.inc()
        return max(1, math.ceil(times[0] + self._window - now))

    def _sweep(self, now: float) -> None:
        # Once per window: forget callers whose last request left it, so memory follows the
        # callers of the last window, not every caller ever seen.
        idle = [key for key, times in self._hits.items() if not times or times[-1] <= now - self._window]
        for key in idle:
            del self._hits[key]
        self._next_sweep = now + self._window

    @property
    def callers(self) -> int:
        """How many callers' windows are kept (for tests and curiosity)."""
        return len(self._hits)
