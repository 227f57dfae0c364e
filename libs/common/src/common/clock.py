"""The use cases' clock: a function returning the time, injectable so tests can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system clock, timezone-aware UTC."""
    return datetime.now(UTC)
