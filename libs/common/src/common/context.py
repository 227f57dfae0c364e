"""Per-request context (request id, deadline) in contextvars; the trace is OpenTelemetry's.

Middleware sets these on the way in; the logger, the HTTP client and the outbox read them,
so ids and budgets travel across HTTP hops and into Kafka headers without being passed by hand.
The trace context is OpenTelemetry's current span (``common.tracing``); ``current_trace``
reads it for logs and for code that quotes a trace id.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import trace

REQUEST_ID_HEADER = "X-Request-ID"
TRACEPARENT_HEADER = "traceparent"
# The deadline travels twice, see ``Deadline.from_headers``:
DEADLINE_HEADER = "X-Deadline-Ms"  # remaining budget in milliseconds when sent (relative)
DEADLINE_AT_HEADER = "X-Deadline-At"  # the same end as wall-clock Unix time in milliseconds (absolute)

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
deadline_var: ContextVar[Deadline | None] = ContextVar("deadline", default=None)


def new_request_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class TraceContext:
    """A span's ids as W3C trace context (``traceparent``): version-traceid-spanid-flags."""

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

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def current_trace() -> TraceContext | None:
    """The current OpenTelemetry span's ids, or None outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return TraceContext(
        trace.format_trace_id(context.trace_id),
        trace.format_span_id(context.span_id),
        f"{int(context.trace_flags):02x}",
    )


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
        """``X-Deadline-Ms``: the budget left, in whole milliseconds."""
        return str(max(0, int(self.remaining() * 1000)))

    def at_header_value(self) -> str:
        """``X-Deadline-At``: the same end on the wall clock, Unix time in milliseconds."""
        return str(int((time.time() + self.remaining()) * 1000))

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], *, cap: float) -> Deadline:
        """The tightest of our own ``cap``, the caller's relative budget and its absolute end.

        ``headers`` has lower-case names. Why both: the relative budget starts counting when
        *we read* the request, so a request that waited in the socket queue of a frozen or
        overloaded process would get its whole budget again, long after its caller gave up.
        The absolute end doesn't restart, but it reads another host's clock: if ours is ahead,
        the budget looks shorter (we refuse early, never late); if ours is behind, it looks
        longer, and then the relative budget is the bound. Taking the minimum, skew can only
        shorten a budget, never stretch it; NTP keeps hosts within milliseconds, far below any
        budget here. Unparsable values are ignored (our cap still holds).
        """
        budget = cap
        relative = _milliseconds(headers.get(DEADLINE_HEADER.lower()))
        if relative is not None:
            budget = min(budget, relative / 1000)
        absolute = _milliseconds(headers.get(DEADLINE_AT_HEADER.lower()))
        if absolute is not None:
            budget = min(budget, absolute / 1000 - time.time())
        return cls.after(max(0.0, budget))


def _milliseconds(value: str | None) -> int | None:
    # ASCII digits only ("²".isdigit() is true), and few enough to stay a sane float.
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 15:
        return None
    return int(value)


def current_deadline() -> Deadline | None:
    return deadline_var.get()
