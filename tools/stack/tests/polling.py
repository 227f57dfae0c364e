"""Waiting for a condition with a deadline (never for a fixed time: the machine may be loaded)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Return once ``condition()`` is truthy; fail naming ``what`` after ``timeout`` seconds.

    An ``OSError`` from the condition (a /proc file that is not there yet) counts as "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
