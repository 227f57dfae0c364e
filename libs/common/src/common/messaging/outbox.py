"""The transactional outbox: an event is a row written in the same transaction as the change.

Either both the domain change and its event commit, or neither does: no "saved but never
announced", no "announced but rolled back". The relay (``relay.py``) publishes the rows later.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from common.context import request_id_var
from common.messaging.codec import AvroCodec, UnknownEventType
from common.messaging.envelope import H_TRACEPARENT, Envelope
from common.messaging.tables import MessagingTables
from common.messaging.topics import TOPIC_FOR_EVENT
from common.tracing import inject


class Outbox:
    """Writes events into the caller's transaction; wakes listeners when that transaction commits."""

    def __init__(
        self,
        tables: MessagingTables,
        codec: AvroCodec,
        producer_name: str,
        *,
        topics: Mapping[str, str] = TOPIC_FOR_EVENT,
    ) -> None:
        self._table = tables.outbox
        self._codec = codec
        self._producer = producer_name
        self._topics = topics
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._info_key = f"outbox-wake-{id(self)}"

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit that wrote events (e.g. ``relay.wake``)."""
        with self._lock:
            self._listeners.append(listener)

    def add(
        self,
        session: Session,
        event_type: str,
        key: str,
        payload: Mapping[str, Any],
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope:
        """Validate, encode and stage one event in ``session``'s transaction (commits nothing).

        Raises ``SchemaViolation`` now, so a bad event fails the domain transaction.
        """
        value, fingerprint, version = self._codec.encode(event_type, payload)
        topic = self._topics.get(event_type)
        if topic is None:
            raise UnknownEventType(f"no topic for event type {event_type!r}")
        now = datetime.now(UTC)
        # The row keeps the writer's trace context: the relay's produce span continues it. No
        # current span (a script): no traceparent, and the produce span starts the trace.
        carrier: dict[str, str] = {}
        inject(carrier)
        envelope = Envelope(
            event_id=event_id or str(uuid.uuid4()),
            event_type=event_type,
            schema_version=version,
            schema_fingerprint=fingerprint,
            occurred_at=(occurred_at or now).astimezone(UTC).isoformat(timespec="milliseconds"),
            producer=self._producer,
            traceparent=carrier.get(H_TRACEPARENT),
            request_id=request_id_var.get(),
            key=key,
        )
        session.execute(
            self._table.insert().values(
                event_id=envelope.event_id,
                topic=topic,
                key=key,
                event_type=event_type,
                payload=value,
                headers={name: raw.decode() for name, raw in envelope.to_headers()},
                created_at=now,
                attempts=0,
            )
        )
        self._wake_after_commit(session)
        return envelope

    def _wake_after_commit(self, session: Session) -> None:
        # One listener per session, fired by the outermost COMMIT only (not on rollback, not
        # on a savepoint release). After a rollback it stays armed for the session's next commit.
        if session.info.get(self._info_key):
            return
        session.info[self._info_key] = True

        def _committed(committed: Session) -> None:
            committed.info.pop(self._info_key, None)
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                listener()

        event.listen(session, "after_commit", _committed, once=True)
