"""Background threads with stop and wake signals: the shape of every worker in the system.

The outbox relay, a reaper, a mail sender: each is one daemon thread running a loop that
sleeps on ``_wake`` (or ``_stop``) between rounds. They run in threads, not asyncio tasks,
because their I/O (kafka-python, SQLAlchemy, SMTP) blocks; ``stop()`` is prompt because every
wait in the loop is on one of the two events.
"""

from __future__ import annotations

import threading


class BackgroundThread:
    """One named daemon thread; subclasses write ``_run`` and loop until ``_stop`` is set."""

    def __init__(self, name: str) -> None:
        self.thread_name = name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (no-op if it runs); returns at once."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to finish its current round and exit; wait up to ``timeout``."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Start the next round now instead of after the poll interval."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        raise NotImplementedError
