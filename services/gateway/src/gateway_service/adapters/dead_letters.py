"""The dead letters of every topic of the catalogue, read off the event loop and cached briefly.

Reading a DLQ topic opens a Kafka consumer and reads it to its end; the console polls every
second or two, so the board reads at most once per ``refresh_s`` (one read at a time) and
answers with the last result meanwhile. A broker that can't be reached is an error shown on the
panel, not a failed page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any

from common.messaging.dlq import DeadLetter, list_dead_letters, redrive
from common.messaging.topics import ALL_TOPICS, dlq_topic

DLQ_TOPICS: tuple[str, ...] = tuple(dlq_topic(topic) for topic in ALL_TOPICS)
REFRESH_S = 2.0
FIRST_READ_WAIT_S = 5.0  # the first poll waits this long for a result, later ones not at all
Lister = Callable[[str, str], list[DeadLetter]]


def letter_view(topic: str, letter: DeadLetter) -> dict[str, Any]:
    """What the console shows of one letter."""
    return {
        "topic": topic,
        "id": letter.id,
        "origin_topic": letter.origin_topic,
        "consumer": letter.consumer,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "error_history": letter.error_history,
        "redriven": None
        if letter.redriven is None
        else {"group": letter.redriven.group, "at": letter.redriven.at},
    }


class DeadLetterBoard:
    def __init__(self, bootstrap: str, *, refresh_s: float = REFRESH_S, lister: Lister = list_dead_letters):
        self.bootstrap = bootstrap
        self.refresh_s = refresh_s
        self._lister = lister
        self._letters: list[dict[str, Any]] = []
        self._error: str | None = "not read yet"
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def snapshot(self) -> dict[str, Any]:
        """``{"letters": [...], "error": ..., "age_s": ...}`` as last read."""
        if self._reading is None and time.monotonic() - self._read_at > self.refresh_s:
            self._reading = asyncio.create_task(self._read())
        if self._read_at == 0.0 and self._reading is not None:
            # shield: a console poll that gives up must not cancel the read others wait for
            await asyncio.wait([asyncio.shield(self._reading)], timeout=FIRST_READ_WAIT_S)
        age = time.monotonic() - self._read_at if self._read_at else None
        return {"letters": self._letters, "error": self._error, "age_s": age}

    def invalidate(self) -> None:
        """Read again at the next snapshot (after a redrive)."""
        self._read_at = min(self._read_at, time.monotonic() - self.refresh_s - 1) if self._read_at else 0.0

    async def _read(self) -> None:
        try:
            found = await asyncio.gather(
                *(asyncio.to_thread(self._lister, self.bootstrap, topic) for topic in DLQ_TOPICS),
                return_exceptions=True,
            )
            letters: list[dict[str, Any]] = []
            errors: list[str] = []
            for topic, result in zip(DLQ_TOPICS, found, strict=True):
                if isinstance(result, BaseException):
                    errors.append(f"{topic}: {result}")
                else:
                    letters.extend(letter_view(topic, letter) for letter in result)
            self._letters, self._error = letters, "; ".join(errors) or None
            self._read_at = time.monotonic()
        finally:
            self._reading = None

    async def redrive(
        self, topic: str, event_ids: Collection[str] | None, groups: Collection[str] | None
    ) -> int:
        """Send the matching letters of ``topic`` back to their groups; how many were sent."""
        result = await asyncio.to_thread(redrive, self.bootstrap, topic, event_ids=event_ids, groups=groups)
        self.invalidate()
        return len(result.republished)
