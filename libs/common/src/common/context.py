"""Per-request context (request id, trace context, deadline) carried in contextvars.

Middleware sets these on the way in; the logger, the HTTP client and the outbox read them,
so ids and budgets travel across HTTP hops and into Kafka headers without being passed by hand.
"""

from __future__ import annotations

import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass

REQUEST_ID_HEADER = "X-Request-ID"
TRACEPARENT_HEADER = "traceparent"
DEADLINE_HEADER = "X-Deadline-Ms"  # remaining budget in milliseconds: relative, so clock skew can't bite

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)
deadline_var: ContextVar[Deadline | None] = ContextVar("deadline", default=None)


def new_request_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class TraceContext:
    """W3C trace context (``traceparent``): version-traceid-parentid-flags."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def new(cls) -> TraceContext:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @classmethod
    def parse(cls, header: str | None) -> TraceContext | None:
        if not header:
            return None
        parts = header.strip().split("-")
        if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16:
            return None
        try:
            int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
        except ValueError:
            return None
        if parts[1] == "0" * 32 or parts[2] == "0" * 16:
            return None
        return cls(parts[1], parts[2], parts[3])

    def child(self) -> TraceContext:
        """A new span in the same trace: what we send to the next hop."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def current_trace() -> TraceContext | None:
    return TraceContext.parse(traceparent_var.get())


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock by which the current request must be done."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def header_value(self) -> str:
        return str(max(0, int(self.remaining() * 1000)))

    @classmethod
    def from_header(cls, value: str | None, *, cap: float) -> Deadline:
        """The caller's remaining budget, bounded by our own ``cap`` (each hop takes the minimum)."""
        budget = cap
        if value is not None:
            try:
                budget = min(cap, max(0.0, int(value) / 1000))
            except ValueError:
                budget = cap
        return cls.after(budget)


def current_deadline() -> Deadline | None:
    return deadline_var.get()
