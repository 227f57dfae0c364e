"""The outbox relay: a background thread that moves committed outbox rows to Kafka.

Guarantees
- **Nothing lost**: a row is marked ``published_at`` only after the broker acknowledged it
  (``acks=all``). Kafka down → rows wait, the relay backs off and retries; a crash between
  "acked" and "marked" re-sends the row on restart (at-least-once; consumers dedupe by event_id).
- **In order per key**: rows are sent in id order (the commit order of one aggregate's
  changes) and one key always maps to one partition. The rule when something fails:
  *a row is marked published only if every earlier unpublished row of its key was marked
  too.* So if row N fails, later rows of N's key stay unpublished even if the broker took
  them, and the next round sends N and then them again: a key's newest row is always the last
  one delivered. ("N+1 acked, N lost" is rare anyway: rows of one key sent together share a
  partition and usually one atomic batch. Consumers skip the re-sent copy by event_id, and
  state events carry a version, e.g. MemberUpdated.version.)
- **Several relays** (PostgreSQL only): rows are claimed with ``FOR UPDATE SKIP LOCKED`` and
  a relay skips a row while an earlier row of the same key is claimed by another relay. On
  SQLite run one relay per service (its single writer already orders the ids).
- **A failed round starts over with a new producer**, so no producer state survives a broker
  failure (see ``_run``); what the old one still held is sent again (at-least-once).
- **Fault switches** (``common.faults``, where ``relay``): ``pause`` holds the loop before a
  round; ``crash_after_send`` exits the process after the broker acked a batch and before its
  rows are marked, the window that makes delivery at-least-once.

kafka-python is blocking, so the relay runs in its own thread, never in the event loop.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from common.db import Database
from common.faults import Switchboard
from common.messaging.producer import close_producer, create_producer
from common.messaging.tables import MessagingTables
from common.messaging.topics import ensure_topics as ensure_kafka_topics
from common.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED
from common.tracing import extract, inject, tracer
from common.workers import BackgroundThread

log = logging.getLogger(__name__)

ProducerFactory = Callable[[], Any]
TopicsInitializer = Callable[[list[str]], object]
# A claimed outbox row: (id, topic, key, payload, headers), attribute access by name.
OutboxRow = Any


class OutboxRelay(BackgroundThread):
    """Publishes a service's outbox to Kafka from a background thread."""

    def __init__(
        self,
        db: Database,
        tables: MessagingTables,
        producer_factory: ProducerFactory,
        service: str,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        *,
        ensure_topics: TopicsInitializer | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        flush_timeout: float = 20.0,
        faults: Switchboard | None = None,
    ) -> None:
        super().__init__(f"{service}-outbox-relay")
        self._db = db
        self._outbox = tables.outbox
        self._producer_factory = producer_factory
        self._ensure_topics = ensure_topics
        self.service = service
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._flush_timeout = flush_timeout
        self._faults = faults or Switchboard(service)  # a board of its own: no switch set
        self._producer: Any = None
        self._known_topics: set[str] = set()
        self.healthy = False
        self.last_error: str | None = None

    @classmethod
    def for_kafka(
        cls,
        db: Database,
        tables: MessagingTables,
        bootstrap: str,
        service: str,
        *,
        producer_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> OutboxRelay:
        """A relay with the standard producer that creates missing topics before using them."""
        overrides = dict(producer_config or {})
        return cls(
            db,
            tables,
            lambda: create_producer(bootstrap, client_id=f"{service}.outbox-relay", **overrides),
            service,
            ensure_topics=lambda topics: ensure_kafka_topics(bootstrap, topics),
            **kwargs,
        )

    # -- lifecycle -------------------------------------------------------------------------

    # start(), stop(), wake() (wire it to ``Outbox.on_commit``) and running: BackgroundThread.

    def backlog(self) -> int:
        """Rows not yet published; exports it (``outbox_backlog``) and the oldest one's age
        (``outbox_oldest_unsent_age_seconds``). Called after every round, so the age is as fresh
        as the loop (``poll_interval`` when idle, the backoff when Kafka is down) with no extra
        polling; one query reads both."""
        o = self._outbox
        with self._db.read() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(o.c.created_at)).where(o.c.published_at.is_(None))
            ).one()
        OUTBOX_BACKLOG.labels(self.service).set(count or 0)
        OUTBOX_OLDEST_AGE.labels(self.service).set(_age_seconds(oldest))
        return int(count or 0)

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                self._faults.hold_while_paused("relay", self.service, self._stop)
                self._wake.clear()  # before reading: a commit during the round wakes the next one
                try:
                    self._publish_pending()
                except Exception as exc:  # Kafka or the DB is down: wait and try again
                    failures += 1
                    self._failed(exc, failures)
                    # The next round gets a fresh producer (a new producer id). kafka-python
                    # 3.0.12 never recovers an idempotent producer whose sent batch expired
                    # (a leader lost for longer than delivery_timeout_ms): it drops its
                    # producer id without asking for a new one, so every later send waits
                    # forever, neither sent nor expired. Seen with a 3-broker cluster.
                    self._close_producer(timeout=0)
                    # Sleep through wakes: new commits must not hammer a broker that is down.
                    self._stop.wait(self._backoff(failures))
                    continue
                if failures:
                    log.info("outbox relay publishing again after %d failed rounds", failures)
                failures = 0
                self.healthy, self.last_error = True, None
                self._wake.wait(self._poll_interval)
        finally:
            self._close_producer()

    def _backoff(self, failures: int) -> float:
        return float(min(self._backoff_cap, self._backoff_base * 2 ** (failures - 1)))

    def _failed(self, exc: BaseException, failures: int) -> None:
        self.healthy = False
        self.last_error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):  # the DB may be what's down; the gauge can wait
            self.backlog()
        if failures == 1:  # once per outage, not once per round
            log.warning("outbox relay cannot publish, will retry with backoff: %s", self.last_error)
        else:
            log.debug("outbox relay still failing (round %d): %s", failures, self.last_error)

    def _publish_pending(self) -> None:
        if self._producer is None:
            self._producer = self._producer_factory()
        while not self._stop.is_set():
            claimed, error = self._publish_batch(self._producer)
            if error is not None:
                raise error
            if claimed < self._batch_size:
                break
        self.backlog()

    def _publish_batch(self, producer: Any) -> tuple[int, Exception | None]:
        """One batch; returns (rows claimed, first error)."""
        if self._db.is_postgres:
            # Hold the row locks while publishing so no other relay sends the same rows.
            with self._db.transaction() as session:
                rows = self._claim(session, lock=True)
                errors = self._send(producer, rows)
                self._after_send(errors)
                published = self._record(session, rows, errors)
        else:
            # SQLite: never hold the single write lock while waiting for Kafka.
            with self._db.read() as session:
                rows = self._claim(session, lock=False)
            if not rows:
                return 0, None  # don't take the write lock for nothing
            errors = self._send(producer, rows)
            self._after_send(errors)
            with self._db.transaction() as session:
                published = self._record(session, rows, errors)
        for row in published:  # counted once the marks are committed
            OUTBOX_PUBLISHED.labels(self.service, row.topic).inc()
        first = next((e for e in errors.values() if e is not None), None)
        return len(rows), first

    def _after_send(self, errors: Mapping[int, Exception | None]) -> None:
        """The crash_after_send point: something was acked, nothing is marked yet."""
        if any(error is None for error in errors.values()):
            self._faults.crash_point("relay", self.service)

    def _claim(self, session: Session, *, lock: bool) -> Sequence[OutboxRow]:
        o = self._outbox
        query = (
            select(o.c.id, o.c.topic, o.c.key, o.c.payload, o.c.headers)
            .where(o.c.published_at.is_(None))
            .order_by(o.c.id)
            .limit(self._batch_size)
        )
        if not lock:
            return session.execute(query).all()
        rows = session.execute(query.with_for_update(skip_locked=True)).all()
        if not rows:
            return rows
        # Another relay may hold an earlier row of one of our keys: leave that key's rows to it.
        ours = {row.id for row in rows}
        pending = session.execute(
            select(o.c.id, o.c.key)
            .where(o.c.published_at.is_(None), o.c.key.in_({row.key for row in rows}))
            .where(o.c.id <= max(ours))
            .order_by(o.c.id)
        )
        foreign_from: dict[str, int] = {}
        for row_id, key in pending:
            if row_id not in ours:
                foreign_from.setdefault(key, row_id)
        return [r for r in rows if r.id < foreign_from.get(r.key, r.id + 1)]

    def _send(self, producer: Any, rows: Sequence[OutboxRow]) -> dict[int, Exception | None]:
        """Send rows in id order; return {row id: None if acked, else the error}."""
        if self._ensure_topics is not None:
            new_topics = sorted({row.topic for row in rows} - self._known_topics)
            if new_topics:
                self._ensure_topics(new_topics)
                self._known_topics.update(new_topics)
        futures: list[tuple[int, Any, Span]] = []
        errors: dict[int, Exception | None] = {}
        for row in rows:
            span, headers = _produce_span(row)
            try:
                future = producer.send(
                    row.topic,
                    key=row.key.encode(),
                    value=row.payload,
                    headers=[(name, value.encode()) for name, value in headers.items()],
                )
            except Exception as exc:  # e.g. no metadata within max_block_ms: the broker is down
                errors[row.id] = exc
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, str(exc))
                span.end()
                break  # sending later rows now could let them overtake this one
            futures.append((row.id, future, span))
        try:
            producer.flush(timeout=self._flush_timeout)
        except Exception as exc:  # futures still pending count as failures below
            log.debug("outbox relay flush did not complete: %s", exc)
        for row_id, future, span in futures:
            if future.succeeded():
                errors[row_id] = None
            else:
                errors[row_id] = future.exception or TimeoutError("not acknowledged in time")
                span.set_status(StatusCode.ERROR, str(errors[row_id]))
            span.end()  # at the broker's ack (or its failure): the span covers the send
        return errors

    def _record(
        self, session: Session, rows: Sequence[OutboxRow], errors: dict[int, Exception | None]
    ) -> list[OutboxRow]:
        """Mark what may be marked (the per-key rule above); count failed attempts."""
        o = self._outbox
        now = datetime.now(UTC)
        stuck_keys: set[str] = set()
        published: list[OutboxRow] = []
        for row in rows:  # id order
            if row.id not in errors:
                stuck_keys.add(row.key)  # never sent (an earlier send failed)
            elif errors[row.id] is not None:
                stuck_keys.add(row.key)
                error = errors[row.id]
                session.execute(
                    update(o)
                    .where(o.c.id == row.id)
                    .values(attempts=o.c.attempts + 1, last_error=f"{type(error).__name__}: {error}")
                )
            elif row.key not in stuck_keys:
                published.append(row)
        if published:
            session.execute(update(o).where(o.c.id.in_([r.id for r in published])).values(published_at=now))
        return published

    def _close_producer(self, timeout: float = 5) -> None:
        """Close the producer; ``timeout=0`` drops what it still holds (those rows are unmarked
        and sent again by the next round)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            close_producer(producer, timeout)


def _age_seconds(created_at: datetime | str | None) -> float:
    """Seconds since ``created_at`` (0 for no row). SQLite hands back naive UTC datetimes (or,
    through an aggregate like MIN, the stored text), PostgreSQL aware ones."""
    if created_at is None:
        return 0.0
    if isinstance(created_at, str):
        created_at = datetime.fromisoformat(created_at)
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - created_at).total_seconds())


def _produce_span(row: OutboxRow) -> tuple[Span, dict[str, str]]:
    """The row's produce span, a child of the request that wrote the row, and the headers to send.

    The stored ``traceparent`` is replaced by the produce span's, so each consumer's span is a
    child of this send (W3C, OpenTelemetry's propagator). Every re-send of a row is a new span.
    """
    headers = dict(row.headers)
    span = tracer().start_span(
        f"send {row.topic}",
        context=extract(headers),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": row.topic,
            "messaging.kafka.message.key": row.key,
            "messaging.message.id": headers.get("event_id", ""),
            "event.type": headers.get("event_type", ""),
        },
    )
    inject(headers, context=trace.set_span_in_context(span))
    return span, headers
