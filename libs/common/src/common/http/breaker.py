"""Circuit breaker per upstream: a failure *rate* over a sliding window, on purgatory's states.

The model is resilience4j's: the closed circuit keeps the outcomes of the last N calls or T
seconds (``common.http.window``); once that window holds ``minimum_calls``, a failure rate at or
above ``failure_rate`` opens it. Open, it refuses calls for ``ttl`` seconds; then exactly one
probe decides: success closes it (with an empty window), failure re-opens it for another ``ttl``.

What purgatory does here: its state model (``purgatory.domain.model.Context``, the GoF State
pattern) holds the current state and turns every transition into one ``ContextChanged`` event,
which we turn into exactly one log line and one ``circuit_breaker_state`` gauge update. Its
half-open and open states are used as they are. Its closed state counts *consecutive* failures,
so we plug in our own closed state that judges the window instead (``_RateClosedState``); that
is the extension point the State pattern offers, so purgatory still fits.

Why we drive that ``Context`` directly instead of ``AsyncCircuitBreakerFactory``'s
``async with breaker:``:

- **Clock.** purgatory's ``OpenedState`` calls ``time.time()`` to decide when the TTL is over, and
  that can't be injected. We record ``opened_at`` on our own clock (monotonic by default, a fake
  one in tests) and move the circuit to half-open ourselves, so purgatory's own TTL check is never
  reached: tests don't sleep and a wall-clock jump can't shorten or stretch an outage.
- **One probe.** purgatory lets every caller through in half-open; a recovering upstream would
  get the whole backlog at once. We admit exactly one probe and reject the rest fast.
- **Outcomes.** ``async with`` counts any exception as a failure (even a cancelled task) and cannot
  see a 503 *response*; the client reports each attempt's verdict explicitly instead, and says
  "no verdict" for what proves nothing about the upstream (a cancelled call, a call cut short by
  the caller's own deadline). Bulkhead rejections never get this far: they are our own load
  shedding, not the upstream failing.

``admit()`` and ``record()`` never ``await``, so in asyncio no other task can run between
"is the probe slot free?" and "take it": that is the whole single-probe guard, no lock needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from purgatory.domain.messages.events import ContextChanged
from purgatory.domain.model import (
    CLOSED,
    HALF_OPENED,
    OPENED,
    ClosedState,
    Context,
    HalfOpenedState,
    OpenedState,
)

from common.errors import UpstreamUnavailable
from common.http.window import OutcomeWindow, WindowKind
from common.metrics import BREAKER_STATE, BREAKER_TRANSITIONS

log = logging.getLogger(__name__)

BreakerStateName = Literal["closed", "half-open", "open"]
_STATE_NAMES: dict[str, BreakerStateName] = {
    CLOSED: "closed",
    HALF_OPENED: "half-open",
    OPENED: "open",
}
_GAUGE_VALUES: dict[BreakerStateName, int] = {"closed": 0, "half-open": 1, "open": 2}
# Label values are identifiers in PromQL (`to="half_open"`), so no hyphen there.
_TRANSITION_LABELS: dict[BreakerStateName, str] = {
    "closed": "closed",
    "half-open": "half_open",
    "open": "open",
}


@dataclass(frozen=True)
class BreakerPolicy:
    """When to stop calling an upstream, and when to try it again (resilience4j's knobs)."""

    failure_rate: float = 0.5  # share of failed calls in the window that opens the circuit
    minimum_calls: int = 10  # calls the window must hold before its rate means anything
    window: WindowKind = "time"  # the last ``window_size`` seconds, or the last ``window_size`` calls
    window_size: float = 10.0
    ttl: float = 30.0  # seconds to stay open before one probe is let through

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if self.minimum_calls < 1:
            raise ValueError("minimum_calls must be at least 1")
        if self.window == "count" and self.window_size < self.minimum_calls:
            raise ValueError("a count window smaller than minimum_calls could never open the circuit")


class CircuitOpen(UpstreamUnavailable):
    """Rejected by the circuit breaker without calling the upstream (503)."""


@dataclass(frozen=True)
class Permit:
    """One admitted call. Its verdict only counts in the state it was admitted in."""

    generation: int
    probe: bool


class _UpstreamFailed(Exception):
    """What we hand purgatory to count a failure (it wants an exception)."""


class _RateClosedState(ClosedState):
    """Closed, judging the failure rate of a sliding window (purgatory's counts consecutive ones)."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float]) -> None:
        super().__init__()
        self._policy = policy
        self._window = OutcomeWindow(policy.window, policy.window_size, clock)

    def handle_exception(self, context: Context, exc: BaseException) -> None:
        verdict = self._window.record(failed=True)
        self.failure_count = verdict.failures
        if verdict.calls >= self._policy.minimum_calls and verdict.failure_rate >= self._policy.failure_rate:
            context.set_state(OpenedState(context.name))

    def handle_end_request(self, context: Context) -> None:
        self.failure_count = self._window.record(failed=False).failures


class _ProbingState(HalfOpenedState):
    """purgatory's half-open state, closing into a fresh rate window instead of its own counter."""

    def __init__(self, closed: Callable[[], ClosedState]) -> None:
        self._closed = closed

    def handle_end_request(self, context: Context) -> None:
        context.set_state(self._closed())


class CircuitBreaker:
    """closed → open at the failure rate → half-open after ``ttl`` → one probe decides."""

    def __init__(
        self,
        upstream: str,
        policy: BreakerPolicy | None = None,
        *,
        service: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.policy = policy or BreakerPolicy()
        self._service = service
        self._clock = clock
        # purgatory's own threshold is never consulted: our closed state decides when to open.
        self._context = Context(upstream, self.policy.minimum_calls, self.policy.ttl)
        self._context.set_state(self._closed())
        self._context.messages.clear()  # starting closed is no transition
        self._opened_at = 0.0
        # Bumped on every transition: a slow call admitted while closed must not close (or
        # re-open) the circuit when it finishes during someone else's half-open probe.
        self._generation = 0
        self._probe_in_flight = False
        self._export("closed")

    @property
    def state(self) -> BreakerStateName:
        return _STATE_NAMES[self._context.state]

    def admit(self) -> Permit:
        """Let one call through or raise ``CircuitOpen``. Never awaits (see module docstring)."""
        if self._context.state == OPENED:
            wait = self._opened_at + self.policy.ttl - self._clock()
            if wait > 0:
                raise CircuitOpen(
                    f"circuit to {self.upstream} is open", upstream=self.upstream, retry_after=wait
                )
            self._context.set_state(_ProbingState(self._closed))
            self._apply_transitions()
        if self._context.state == HALF_OPENED:
            if self._probe_in_flight:
                # The probe answers within one timeout; "soon" is the honest Retry-After.
                raise CircuitOpen(
                    f"circuit to {self.upstream} is half-open and its probe is in flight",
                    upstream=self.upstream,
                    retry_after=1,
                )
            self._probe_in_flight = True
            return Permit(self._generation, probe=True)
        return Permit(self._generation, probe=False)

    def record(self, permit: Permit, *, ok: bool | None) -> None:
        """Report a call's verdict: True healthy, False failed, None no verdict (e.g. cancelled)."""
        if permit.probe:
            self._probe_in_flight = False  # a cancelled probe frees the slot for the next caller
        if ok is None or permit.generation != self._generation:
            return
        if ok:
            self._context.handle_end_request()
        else:
            self._context.handle_exception(_UpstreamFailed())
        self._apply_transitions()

    def _closed(self) -> ClosedState:
        return _RateClosedState(self.policy, self._clock)

    def _apply_transitions(self) -> None:
        # purgatory queues its events on the context; drain them all (the list would grow forever)
        # and act on the state changes only.
        while self._context.messages:
            event = self._context.messages.pop(0)
            if not isinstance(event, ContextChanged):
                continue
            self._generation += 1
            state = _STATE_NAMES[event.state]
            if state == "open":
                self._opened_at = self._clock()
                log.warning(
                    "circuit to %s opened for %.0fs",
                    self.upstream,
                    self.policy.ttl,
                    extra={"upstream": self.upstream, "breaker_state": state},
                )
            else:
                log.info(
                    "circuit to %s is %s",
                    self.upstream,
                    state,
                    extra={"upstream": self.upstream, "breaker_state": state},
                )
            self._export(state)
            BREAKER_TRANSITIONS.labels(self._service, self.upstream, _TRANSITION_LABELS[state]).inc()

    def _export(self, state: BreakerStateName) -> None:
        BREAKER_STATE.labels(service=self._service, upstream=self.upstream).set(_GAUGE_VALUES[state])
