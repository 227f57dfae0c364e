"""The time source of the use cases, injectable so tests control it."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system clock, timezone-aware UTC."""
    return datetime.now(UTC)
