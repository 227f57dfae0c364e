"""Rate limiting with the ``limits`` library: a moving window per caller, kept in memory.

A moving window counts the requests of the last minute (say) at every instant, so a caller
can't fire twice the limit across a window boundary as with fixed windows. The counts live in
this process: with several gateway instances each would count on its own; pointing
``limits`` at Redis (``limits.aio.storage.RedisStorage``) would share them.
"""

from __future__ import annotations

import math
import time

import limits
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused by the gateway's rate limit")


class RateLimiter:
    """``hit(key)``: count one request of ``key``; the seconds to wait when over the limit."""

    def __init__(self, limit: str) -> None:
        self.limit = limits.parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, key: str) -> float | None:
        """``None`` when the request is allowed, else the seconds until the window has room."""
        if await self._limiter.hit(self.limit, key):
            return None
        RATE_LIMITED.inc()
        stats = await self._limiter.get_window_stats(self.limit, key)
        return max(1, math.ceil(stats.reset_time - time.time()))
