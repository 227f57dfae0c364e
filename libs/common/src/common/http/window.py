"""The circuit breaker's memory: the outcomes of the last N calls, or of the last T seconds.

The resilience4j model: a breaker judges a failure *rate* over a sliding window, and only once
the window holds a minimum number of calls. Counting consecutive failures instead lets a burst
open the circuit to a healthy upstream (five slow answers in a row among hundreds of good
ones), and lets one success hide an upstream that fails nine calls in ten.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

WindowKind = Literal["count", "time"]


@dataclass(frozen=True)
class WindowVerdict:
    """What the window holds now."""

    calls: int
    failures: int

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0


class OutcomeWindow:
    """Outcomes of the last ``size`` calls (``count``) or of the last ``size`` seconds (``time``)."""

    def __init__(self, kind: WindowKind, size: float, clock: Callable[[], float]) -> None:
        if size <= 0:
            raise ValueError("a window needs a positive size")
        self.kind = kind
        self.size = size
        self._clock = clock
        # (when, failed); a count window drops its oldest entry by itself.
        self._outcomes: deque[tuple[float, bool]] = deque(maxlen=int(size) if kind == "count" else None)
        self._failures = 0

    def record(self, *, failed: bool) -> WindowVerdict:
        """Add one call's outcome; returns the window as it is afterwards."""
        if self._outcomes.maxlen is not None and len(self._outcomes) == self._outcomes.maxlen:
            self._failures -= self._outcomes[0][1]
        self._outcomes.append((self._clock(), failed))
        self._failures += failed
        return self.verdict()

    def verdict(self) -> WindowVerdict:
        if self.kind == "time":
            horizon = self._clock() - self.size
            while self._outcomes and self._outcomes[0][0] <= horizon:
                self._failures -= self._outcomes.popleft()[1]
        return WindowVerdict(len(self._outcomes), self._failures)
