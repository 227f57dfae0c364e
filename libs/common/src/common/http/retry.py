"""When a failed call may be retried, and how long to wait first.

Retrying is only safe when repeating the request can't double its effect: idempotent methods,
or any request carrying an ``Idempotency-Key`` the callee deduplicates on. And it only helps for
failures that are likely transient (connect errors, timeouts, 429/502/503/504).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter, plus a retry budget."""

    max_attempts: int = 3  # attempts in total, the first one included
    backoff_base: float = 0.1  # seconds
    backoff_cap: float = 2.0  # seconds
    # A longer Retry-After is handed to our caller (in our 503) instead of being waited out here.
    max_retry_after: float = 10.0
    budget_ratio: float = 0.2  # retries may be at most this share of calls ...
    budget_reserve: float = 10.0  # ... plus this many, so a quiet service can still retry

    def allows(self, method: str, idempotency_key: str | None) -> bool:
        """May a request with this method (and key) be sent more than once?"""
        return method.upper() in IDEMPOTENT_METHODS or bool(idempotency_key)

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Full jitter for the ``retry``-th retry (0-based): uniform(0, min(cap, base * 2**retry)).

        Random, not fixed, so that clients that failed together don't retry together.
        """
        return rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2**retry))


class RetryBudget:
    """Token bucket: every call earns ``ratio`` of a retry, every retry spends a whole one.

    During an outage each call fails and wants to retry; without a budget that multiplies the
    load on an upstream that is already struggling. With it, retries stay ≤ ratio of calls.
    """

    def __init__(self, ratio: float, reserve: float) -> None:
        self._ratio = ratio
        self._cap = reserve
        self._tokens = reserve

    def record_call(self) -> None:
        self._tokens = min(self._cap, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when it is empty."""
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown origin (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
