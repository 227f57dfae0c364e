"""Circuit breaker per upstream: purgatory's state machine, our clock, our single half-open probe.

What purgatory does here: its state model (``purgatory.domain.model.Context``) counts
consecutive failures, opens at the threshold, and in half-open closes on success or re-opens on
failure. Every transition comes out of it as one ``ContextChanged`` event, which we turn into
exactly one log line and one ``circuit_breaker_state`` gauge update.

Why we drive that ``Context`` directly instead of ``AsyncCircuitBreakerFactory``'s
``async with breaker:``:

- **Clock.** purgatory's ``OpenedState`` calls ``time.time()`` to decide when the TTL is over, and
  that can't be injected. We record ``opened_at`` on our own clock (monotonic by default, a fake
  one in tests) and move the circuit to half-open ourselves, so purgatory's own TTL check is never
  reached: tests don't sleep and a wall-clock jump can't shorten or stretch an outage.
- **One probe.** purgatory lets every caller through in half-open; a recovering upstream would
  get the whole backlog at once. We admit exactly one probe and reject the rest fast.
- **Outcomes.** ``async with`` counts any exception as a failure (even a cancelled task) and cannot
  see a 503 *response*; the client reports each attempt's verdict explicitly instead.

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
from purgatory.domain.model import CLOSED, HALF_OPENED, OPENED, Context, HalfOpenedState

from common.errors import UpstreamUnavailable
from common.metrics import BREAKER_STATE

log = logging.getLogger(__name__)

BreakerStateName = Literal["closed", "half-open", "open"]
_STATE_NAMES: dict[str, BreakerStateName] = {
    CLOSED: "closed",
    HALF_OPENED: "half-open",
    OPENED: "open",
}
_GAUGE_VALUES: dict[BreakerStateName, int] = {"closed": 0, "half-open": 1, "open": 2}


@dataclass(frozen=True)
class BreakerPolicy:
    """When to stop calling an upstream, and when to try it again."""

    threshold: int = 5  # consecutive failures that open the circuit
    ttl: float = 30.0  # seconds to stay open before one probe is let through


class CircuitOpen(UpstreamUnavailable):
    """Rejected by the circuit breaker without calling the upstream (503)."""


@dataclass(frozen=True)
class Permit:
    """One admitted call. Its verdict only counts in the state it was admitted in."""

    generation: int
    probe: bool


class _UpstreamFailed(Exception):
    """What we hand purgatory to count a failure (it wants an exception)."""


class CircuitBreaker:
    """closed → open after ``threshold`` failures → half-open after ``ttl`` → one probe decides."""

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
        self._context = Context(upstream, self.policy.threshold, self.policy.ttl)
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
            self._context.set_state(HalfOpenedState())
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

    def _export(self, state: BreakerStateName) -> None:
        BREAKER_STATE.labels(service=self._service, upstream=self.upstream).set(_GAUGE_VALUES[state])
