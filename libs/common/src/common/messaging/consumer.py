"""The consumer runner: at-least-once in, effectively-once effects, poison messages parked.

For each message, in partition order:
1. Read the envelope and decode the payload here, not in a ``value_deserializer`` (a decode
   error there would loop on the message or lose it). Unreadable → dead-letter topic.
2. Event types this consumer has no handler for are skipped, and so is a re-driven message
   addressed to another consumer group (header ``redrive_group``): a dead letter belongs to
   the group that gave up on it, and only that group gets it back (``common.messaging.dlq``).
3. In ONE database transaction: record ``(consumer, event_id)`` in ``processed_events`` (already
   there → a duplicate, skipped) and run the handler. Both commit or neither does.
4. Only after that commit, commit the Kafka offset. A crash in between redelivers the message
   and step 3 recognises it.
Transient errors are retried with backoff; after ``max_attempts`` (or at once for a
``PermanentError``) the message goes to ``<topic>.dlq`` with its error history and origin, and
the partition moves on. If even the DLQ can't be written, the offset is not committed.

kafka-python's consumer is not thread-safe: each runner owns one consumer in its own thread.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata, TopicPartition
from opentelemetry.trace import Span, SpanKind
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.context import request_id_var
from common.db import Database
from common.faults import Switchboard
from common.messaging.codec import AvroCodec, UndecodableMessage
from common.messaging.envelope import H_EVENT_ID, H_EVENT_TYPE, H_REQUEST_ID, Envelope, Headers, utc_now_iso
from common.messaging.producer import close_producer, create_producer, new_consumer
from common.messaging.tables import MessagingTables
from common.messaging.topics import dlq_topic, ensure_topics
from common.metrics import (
    CONSUMER_LAG,
    DLQ_SIZE,
    MESSAGE_PROCESSING,
    MESSAGES_CONSUMED,
    MESSAGES_DLQ,
    MESSAGES_DUPLICATE,
    MESSAGES_RETRIED,
)
from common.tracing import extract, span

log = logging.getLogger(__name__)

Handler = Callable[[Session, Envelope, dict[str, Any]], None]
ErrorHistory = list[dict[str, Any]]

DLQ_HEADER_PREFIX = "dlq_"
H_DLQ_ERROR_HISTORY = "dlq_error_history"
H_DLQ_ORIGIN_TOPIC = "dlq_origin_topic"
H_DLQ_ORIGIN_PARTITION = "dlq_origin_partition"
H_DLQ_ORIGIN_OFFSET = "dlq_origin_offset"
H_DLQ_CONSUMER = "dlq_consumer"
# On a re-driven message in the origin topic: the one consumer group it is for.
H_REDRIVE_GROUP = "redrive_group"

# Quick group joins and prompt failure detection; the broker's group.min.session.timeout.ms
# (6 s by default) bounds session_timeout_ms from below.
DEFAULT_CONSUMER_CONFIG: Mapping[str, Any] = {
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 1_000,
    # An idle consumer sends one fetch per fetch_max_wait_ms (the broker holds it until data
    # arrives or the wait ends: fetch_min_bytes is 1, so a message is answered at once, never
    # later). Short waits only cost CPU in every consumer and in the broker while nothing happens.
    "fetch_max_wait_ms": 1_000,
    # Few records per poll: a batch of poison messages, each retried with backoff, must still
    # finish within max_poll_interval_ms (5 min) or the consumer is dropped from the group.
    "max_poll_records": 10,
    "request_timeout_ms": 10_000,
    "bootstrap_timeout_ms": 5_000,
    "reconnect_backoff_max_ms": 1_000,
    "allow_auto_create_topics": False,
    # A redrive is a Kafka transaction (the message and its "redriven" marker together): never
    # read the records of one that was aborted.
    "isolation_level": "read_committed",
}


class _AssignmentLost(Exception):
    """The group rebalanced under us: an offset commit was refused (``CommitFailedError``)."""


class PermanentError(Exception):
    """Raised by a handler when retrying can't help: the message goes straight to the DLQ."""


class ConsumerRunner:
    """One consumer group member running ``handlers`` in its own thread."""

    def __init__(
        self,
        name: str,
        topics: Iterable[str],
        db: Database,
        tables: MessagingTables,
        codec: AvroCodec,
        handlers: Mapping[str, Handler],
        bootstrap: str,
        service: str,
        max_attempts: int = 5,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        *,
        poll_timeout: float = 0.5,
        consumer_config: Mapping[str, Any] | None = None,
        producer_config: Mapping[str, Any] | None = None,
        faults: Switchboard | None = None,
        dlq_refresh_interval: float = 300.0,
    ) -> None:
        self.name = name  # also the consumer group id and the dedup namespace
        self._faults = faults or Switchboard(service)  # fault switches (common.faults): pause, crash
        self.topics = sorted(set(topics))
        self._db = db
        self._processed = tables.processed_events
        self._codec = codec
        self._handlers = dict(handlers)
        self._bootstrap = bootstrap
        self.service = service
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._poll_timeout_ms = int(poll_timeout * 1000)
        self._consumer_config = {**DEFAULT_CONSUMER_CONFIG, **(consumer_config or {})}
        self._producer_config = dict(producer_config or {})  # for the DLQ producer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dlq_producer: Any = None
        self._connected = False
        self._stuck = False  # the DLQ can't be written: the partition is blocked
        self.last_error: str | None = None
        # dead_letter_queue_size: this group's letters not redriven yet, by event id ("" when the
        # letter has none). Reading the DLQ topics at every (re)connect and every
        # ``dlq_refresh_interval`` makes the topic the truth (redrives done while we were down
        # included); in between, +1 per letter we write and -1 when a redriven copy of one comes
        # back to us (its marker was written with it), so the gauge is fresh at no cost.
        self._dlq_pending: Counter[str] = Counter()
        self._dlq_refresh_interval = dlq_refresh_interval
        self._dlq_refresh_at = 0.0
        self._dlq_size = DLQ_SIZE.labels(service, name)
        self._dlq_size.set(0)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread; returns at once (the thread waits for Kafka if it is down)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"consumer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current message (uncommitted work is redelivered later) and join."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def healthy(self) -> bool:
        """Connected to Kafka and not blocked on an unwritable DLQ (for readiness)."""
        return self.running and self._connected and not self._stuck

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                consumer = self._connect()
            except Exception as exc:  # Kafka absent or starting: keep trying, never crash
                failures += 1
                self._note_failure("cannot connect to Kafka", exc, failures)
                self._stop.wait(self._delay(failures))
                continue
            failures = 0
            try:
                self._consume(consumer)
            except Exception as exc:
                failures += 1
                self._note_failure("consumer failed, reconnecting", exc, failures)
                self._stop.wait(self._delay(failures))
            finally:
                self._connected = False
                _quietly(consumer.close, autocommit=False, timeout_ms=2_000)
        if self._dlq_producer is not None:
            close_producer(self._dlq_producer, 2)

    def _connect(self) -> Any:
        timeout_s = self._consumer_config["bootstrap_timeout_ms"] / 1000
        ensure_topics(self._bootstrap, self.topics, timeout_s=timeout_s)  # and their .dlq twins
        consumer = new_consumer(
            bootstrap_servers=self._bootstrap,
            group_id=self.name,
            client_id=f"{self.service}.{self.name}",
            enable_auto_commit=False,  # we commit each offset after the DB commit
            auto_offset_reset="earliest",  # a new group starts from the oldest event, missing none
            **self._consumer_config,
        )
        # Know the partitions BEFORE joining the group: kafka-python may otherwise join with
        # no metadata for a just-created topic, get assigned nothing, and sit idle for minutes.
        for topic in self.topics:
            consumer.partitions_for_topic(topic)
        consumer.subscribe(self.topics)
        self._connected, self.last_error = True, None
        log.info("consumer %s subscribed to %s", self.name, ", ".join(self.topics))
        self._dlq_refresh_at = 0.0  # read the DLQ before the first message
        return consumer

    def _consume(self, consumer: Any) -> None:
        while not self._stop.is_set():
            self._faults.hold_while_paused("consumer", self.name, self._stop)
            if time.monotonic() >= self._dlq_refresh_at:
                self._refresh_dead_letters()
            batches = consumer.poll(timeout_ms=self._poll_timeout_ms)
            try:
                for messages in batches.values():
                    for message in messages:
                        if not self._handle(consumer, message):
                            return  # stopping mid-message: not committed, so redelivered later
            except _AssignmentLost as lost:
                # The group moved on without us (frozen past the session timeout, or a rebalance):
                # the rest of this batch may belong to another member now. Drop it; the next poll
                # rejoins, and whatever comes back was recorded in processed_events: a duplicate.
                log.warning("consumer %s lost its partitions (%s); rejoining the group", self.name, lost)

    def _handle(self, consumer: Any, message: Any) -> bool:
        """Process one message to a final outcome and commit its offset; False if stopped."""
        began = time.monotonic()
        if _redrive_group(message.headers) == self.name:
            # Its letter is marked redriven; first, as failing again writes a new letter.
            self._count_dead_letter(message.headers, -1)
        with _processing(self.name, message) as span:
            outcome = self._outcome(message)
            if outcome is None:
                return False
            if outcome != "skipped":  # the processing-time SLO is about the events we act on
                took = time.monotonic() - began
                MESSAGE_PROCESSING.labels(self.service, self.name, message.topic).observe(took)
            span.set_attribute("messaging.outcome", outcome)
            headers = _text_headers(message.headers)
            log.info(
                "consumer %s: %s %s from %s[%d]@%d: %s",
                self.name, headers.get(H_EVENT_TYPE), headers.get(H_EVENT_ID),
                message.topic, message.partition, message.offset, outcome,
                extra={
                    "consumer": self.name, "topic": message.topic, "partition": message.partition,
                    "offset": message.offset, "event_type": headers.get(H_EVENT_TYPE),
                    "event_id": headers.get(H_EVENT_ID), "outcome": outcome,
                },
            )  # fmt: skip
        self._faults.crash_point("consumer", self.name)  # after the DB commit, before the offset's
        tp = TopicPartition(message.topic, message.partition)
        try:
            consumer.commit({tp: OffsetAndMetadata(message.offset + 1, "", -1)}, timeout_ms=5_000)
        except CommitFailedError as exc:  # the effect is recorded; its redelivery is a duplicate
            MESSAGES_CONSUMED.labels(self.service, self.name, message.topic, outcome).inc()
            raise _AssignmentLost(f"commit of {tp.topic}[{tp.partition}]@{message.offset} refused") from exc
        except Exception as exc:  # e.g. a broker hiccup: the effect is recorded, redelivery is a dup
            log.warning("consumer %s could not commit %s@%d: %s", self.name, tp, message.offset, exc)
        MESSAGES_CONSUMED.labels(self.service, self.name, message.topic, outcome).inc()
        _quietly(self._report_lag, consumer, tp, message.offset)
        return True

    def _outcome(self, message: Any) -> str | None:
        """applied | duplicate | skipped | dead_lettered, or None when stopped before the end."""
        target = _redrive_group(message.headers)
        if target is not None and target != self.name:
            return "skipped"  # re-driven for another group; checked first: it may be garbage
        try:
            envelope = Envelope.from_headers(message.headers, message.key)
        except UndecodableMessage as exc:
            return self._dead_letter(message, [_history_entry(1, exc)])
        handler = self._handlers.get(envelope.event_type)
        if handler is None:
            return "skipped"  # not our business; another consumer of the topic may care
        try:
            event_type, _, payload = self._codec.decode(message.value or b"", envelope.schema_fingerprint)
            if event_type != envelope.event_type:
                raise UndecodableMessage(f"header says {envelope.event_type}, schema is {event_type}")
        except UndecodableMessage as exc:
            return self._dead_letter(message, [_history_entry(1, exc)])
        return self._process(message, envelope, payload, handler)

    def _process(
        self, message: Any, envelope: Envelope, payload: dict[str, Any], handler: Handler
    ) -> str | None:
        history: ErrorHistory = []
        for attempt in range(1, self._max_attempts + 1):
            try:
                applied = self._apply(envelope, payload, handler)
            except PermanentError as exc:
                history.append(_history_entry(attempt, exc))
                break
            except Exception as exc:
                history.append(_history_entry(attempt, exc))
                log.warning(
                    "consumer %s: %s %s failed (attempt %d/%d): %s",
                    self.name, envelope.event_type, envelope.event_id,
                    attempt, self._max_attempts, history[-1]["error"],
                )  # fmt: skip
                if attempt == self._max_attempts:
                    break
                MESSAGES_RETRIED.labels(self.service, self.name, message.topic).inc()
                if self._stop.wait(self._delay(attempt, jitter=True)):
                    return None
                continue
            if not applied:
                MESSAGES_DUPLICATE.labels(self.service, self.name, message.topic).inc()
                return "duplicate"
            return "applied"
        return self._dead_letter(message, history)

    def _apply(self, envelope: Envelope, payload: dict[str, Any], handler: Handler) -> bool:
        """Dedup record + side effect in one transaction; False if already processed."""
        pe = self._processed
        with self._db.transaction() as session:
            seen = session.scalar(
                select(pe.c.event_id).where(pe.c.consumer == self.name, pe.c.event_id == envelope.event_id)
            )
            if seen is not None:
                return False
            # The primary key also stops a concurrent twin (a rebalance): its insert fails,
            # it is retried, and the retry sees the row.
            session.execute(
                pe.insert().values(
                    consumer=self.name, event_id=envelope.event_id, processed_at=datetime.now(UTC)
                )
            )
            handler(session, envelope, payload)
        return True

    def _dead_letter(self, message: Any, history: ErrorHistory) -> str | None:
        """Write the message to ``<topic>.dlq``; retry until it's acked (or we're stopped)."""
        headers: Headers = [
            (name, value)
            for name, value in (message.headers or [])
            if value is not None and not name.startswith(DLQ_HEADER_PREFIX) and name != H_REDRIVE_GROUP
        ]
        headers += [
            (H_DLQ_ERROR_HISTORY, json.dumps(history).encode()),
            (H_DLQ_ORIGIN_TOPIC, message.topic.encode()),
            (H_DLQ_ORIGIN_PARTITION, str(message.partition).encode()),
            (H_DLQ_ORIGIN_OFFSET, str(message.offset).encode()),
            (H_DLQ_CONSUMER, self.name.encode()),
        ]
        target = dlq_topic(message.topic)
        failures = 0
        while not self._stop.is_set():
            try:
                if self._dlq_producer is None:
                    self._dlq_producer = create_producer(
                        self._bootstrap, f"{self.name}.dlq", **self._producer_config
                    )
                value = message.value if message.value is not None or message.key else b""
                self._dlq_producer.send(target, key=message.key, value=value, headers=headers).get(timeout=20)
            except Exception as exc:
                failures += 1
                self._stuck = True
                self._note_failure(f"cannot write {target}; offset not committed", exc, failures)
                if self._dlq_producer is not None:  # start afresh next time
                    close_producer(self._dlq_producer, 0)
                    self._dlq_producer = None
                self._stop.wait(self._delay(failures))
                continue
            self._stuck = False
            MESSAGES_DLQ.labels(self.service, self.name, message.topic).inc()
            self._count_dead_letter(message.headers, +1)
            log.error(
                "consumer %s dead-lettered %s[%d]@%d to %s: %s",
                self.name, message.topic, message.partition, message.offset, target,
                history[-1]["error"] if history else "?",
            )  # fmt: skip
            return "dead_lettered"
        return None

    # -- helpers ---------------------------------------------------------------------------

    def _delay(self, attempt: int, *, jitter: bool = False) -> float:
        delay = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        # Jitter spreads retries of many consumers hitting the same failing dependency.
        return random.uniform(delay / 2, delay) if jitter else delay  # noqa: S311 - not crypto

    def _note_failure(self, what: str, exc: BaseException, failures: int) -> None:
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        if failures == 1:  # once per outage, not once per retry
            log.warning("consumer %s: %s", self.name, self.last_error)
        else:
            log.debug("consumer %s (failure %d): %s", self.name, failures, self.last_error)

    def _refresh_dead_letters(self) -> None:
        """Count this group's letters not yet redriven by reading its DLQ topics to their end."""
        from common.messaging.dlq import DlqError, read_dead_letters  # dlq imports this module

        self._dlq_refresh_at = time.monotonic() + self._dlq_refresh_interval
        pending: Counter[str] = Counter()
        try:
            for topic in self.topics:
                try:
                    letters = read_dead_letters(self._bootstrap, dlq_topic(topic), timeout_s=10).pending
                except DlqError as exc:
                    if "does not exist" in str(exc):
                        continue
                    raise
                pending.update(letter.event_id or "" for letter in letters if letter.consumer == self.name)
        except Exception as exc:  # the gauge keeps its count meanwhile
            log.debug("consumer %s could not read its dead letters: %s", self.name, exc)
            self._dlq_refresh_at = time.monotonic() + 30
            return
        self._dlq_pending = pending
        self._dlq_size.set(pending.total())

    def _count_dead_letter(self, headers: Iterable[tuple[str, bytes | None]] | None, change: int) -> None:
        event_id = next(
            (v.decode(errors="replace") for n, v in headers or () if n == H_EVENT_ID and v is not None), ""
        )
        if change < 0 and self._dlq_pending[event_id] <= 0:
            return  # redriven before our last read of the DLQ: not counted
        self._dlq_pending[event_id] += change
        self._dlq_size.set(self._dlq_pending.total())

    def _report_lag(self, consumer: Any, tp: Any, offset: int) -> None:
        highwater = consumer.highwater(tp)  # from the last fetch response: no extra request
        if highwater is not None:
            CONSUMER_LAG.labels(self.service, self.name, tp.topic, str(tp.partition)).set(
                max(0, highwater - offset - 1)
            )


def _redrive_group(headers: Iterable[tuple[str, bytes | None]] | None) -> str | None:
    for name, value in headers or ():
        if name == H_REDRIVE_GROUP and value is not None:
            return value.decode(errors="replace")
    return None


def _history_entry(attempt: int, exc: BaseException) -> dict[str, Any]:
    return {"attempt": attempt, "error": f"{type(exc).__name__}: {exc}", "at": utc_now_iso()}


def _text_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    return {name: raw.decode(errors="replace") for name, raw in headers or () if raw is not None}


@contextmanager
def _processing(group: str, message: Any) -> Iterator[Span]:
    """The message's processing span, a child of its produce span (``traceparent`` header), with
    the producer's request id: the handler's logs, onward calls and events continue the trace."""
    headers = _text_headers(message.headers)
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": message.topic,
        "messaging.consumer.group.name": group,
        "messaging.destination.partition.id": str(message.partition),
        "messaging.kafka.offset": message.offset,
        "messaging.message.id": headers.get(H_EVENT_ID, ""),
        "event.type": headers.get(H_EVENT_TYPE, ""),
    }
    request_token = request_id_var.set(headers.get(H_REQUEST_ID))
    try:
        with span(
            f"process {message.topic}",
            kind=SpanKind.CONSUMER,
            context=extract(headers),
            attributes=attributes,
        ) as current:
            yield current
    finally:
        request_id_var.reset(request_token)


def _quietly(action: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    try:
        action(*args, **kwargs)
    except Exception as exc:
        log.debug("ignored during cleanup: %s", exc)
