"""BackgroundThread: one thread, prompt stop, wake ends the wait early."""

from __future__ import annotations

import threading
import time

from common.workers import BackgroundThread


class Ticker(BackgroundThread):
    """Counts rounds; waits up to an hour between them unless woken."""

    def __init__(self) -> None:
        super().__init__("ticker")
        self.rounds = 0
        self.round_done = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.rounds += 1
            self.round_done.set()
            self._wake.wait(3600)


def test_wake_starts_a_round_now_and_stop_is_prompt() -> None:
    ticker = Ticker()
    ticker.start()
    ticker.start()  # a second start is a no-op: still one thread
    assert ticker.round_done.wait(5)
    assert [t.name for t in threading.enumerate()].count("ticker") == 1

    ticker.round_done.clear()
    ticker.wake()
    assert ticker.round_done.wait(5)
    assert ticker.rounds == 2

    began = time.monotonic()
    ticker.stop(timeout=5)
    assert not ticker.running
    assert time.monotonic() - began < 5  # not the hour it was waiting
