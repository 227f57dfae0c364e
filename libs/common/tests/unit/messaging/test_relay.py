"""The relay's rules, with a fake producer (the real broker is in the integration tests)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from common.messaging import AvroCodec, Outbox, OutboxRelay


@dataclass
class FakeFuture:
    exception: Exception | None = None

    def succeeded(self) -> bool:
        return self.exception is None


@dataclass
class FakeProducer:
    """Acks everything except the event ids in ``fail_once`` (each fails on its first send)."""

    fail_once: set[str] = field(default_factory=set)
    sent: list[tuple[str, str, bool]] = field(default_factory=list)  # (key, event_id, acked)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, topic, key, value, headers):
        event_id = dict(headers)["event_id"].decode()
        with self.lock:
            failed = event_id in self.fail_once
            self.fail_once.discard(event_id)
            self.sent.append((key.decode(), event_id, not failed))
        return FakeFuture(RuntimeError("broker said no") if failed else None)

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        pass


def wait_for(condition, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def outbox(store, codec: AvroCodec) -> Outbox:
    return Outbox(store[1], codec, producer_name="room")


def _write(store, outbox, payloads, keys: list[str]) -> list[str]:
    db, _ = store
    ids = []
    for key in keys:
        with db.transaction() as session:
            payload = {**payloads["ReservationCreated"], "reservation_id": key}
            ids.append(outbox.add(session, "ReservationCreated", key, payload).event_id)
    return ids


def _unpublished(store) -> list[tuple[str, int, str | None]]:
    db, tables = store
    o = tables.outbox
    with db.read() as session:
        rows = session.execute(
            select(o.c.event_id, o.c.attempts, o.c.last_error)
            .where(o.c.published_at.is_(None))
            .order_by(o.c.id)
        )
        return [tuple(row) for row in rows]


def test_a_failed_row_holds_back_later_rows_of_its_key_only(store, outbox, payloads) -> None:
    db, tables = store
    ids = _write(store, outbox, payloads, ["a", "b", "a", "a", "b"])
    a1, b1, a2, a3, b2 = ids
    producer = FakeProducer(fail_once={a2})
    relay = OutboxRelay(db, tables, lambda: producer, "room", poll_interval=60, backoff_base=60)
    relay.start()
    try:
        wait_for(lambda: relay.last_error is not None, what="the failed round")
        # a2 failed; a3 was acked but must wait for a2; b is unaffected.
        assert _unpublished(store) == [
            (a2, 1, "RuntimeError: broker said no"),
            (a3, 0, None),
        ]
        assert relay.backlog() == 2
        assert not relay.healthy
    finally:
        relay.stop()

    relay = OutboxRelay(db, tables, lambda: producer, "room", poll_interval=60)
    relay.start()
    try:
        wait_for(lambda: relay.backlog() == 0, what="the retry")
        wait_for(lambda: relay.healthy, what="the relay to report healthy")
    finally:
        relay.stop()
    retried = producer.sent[5:]
    assert retried == [("a", a2, True), ("a", a3, True)]  # a2 first, then a3 again
    assert [e for k, e, ok in producer.sent if k == "b"] == [b1, b2]  # b sent once each
    assert producer.sent[0] == ("a", a1, True)


def test_producer_factory_failures_are_retried_without_blocking_start(store, outbox, payloads) -> None:
    db, tables = store
    _write(store, outbox, payloads, ["a", "b"])
    attempts = []
    producer = FakeProducer()

    def factory():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionError("no broker")
        return producer

    relay = OutboxRelay(db, tables, factory, "room", backoff_base=0.01, backoff_cap=0.05)
    started = time.monotonic()
    relay.start()
    assert time.monotonic() - started < 1  # start() doesn't wait for the producer
    try:
        wait_for(lambda: relay.backlog() == 0, what="delivery after the broker came back")
        wait_for(lambda: relay.healthy, what="the relay to report healthy")
        assert relay.last_error is None
        assert len(attempts) == 3
    finally:
        relay.stop()
    assert not relay.running


def test_commit_wakes_the_relay_before_the_poll_interval(store, outbox, payloads) -> None:
    db, tables = store
    producer = FakeProducer()
    relay = OutboxRelay(db, tables, lambda: producer, "room", poll_interval=60)
    outbox.on_commit(relay.wake)
    relay.start()
    try:
        wait_for(lambda: relay.healthy, what="the first (empty) round")
        _write(store, outbox, payloads, ["a"])
        wait_for(lambda: relay.backlog() == 0, timeout=10, what="the wake-up (poll is 60 s)")
    finally:
        started = time.monotonic()
        relay.stop()
        assert time.monotonic() - started < 5  # stop interrupts the 60 s wait
    assert len(producer.sent) == 1


def test_batches_drain_the_whole_backlog_in_id_order(store, outbox, payloads) -> None:
    db, tables = store
    ids = _write(store, outbox, payloads, [f"k{i % 4}" for i in range(23)])
    producer = FakeProducer()
    relay = OutboxRelay(db, tables, lambda: producer, "room", batch_size=5, poll_interval=60)
    relay.start()
    try:
        wait_for(lambda: relay.backlog() == 0, what="all batches")
    finally:
        relay.stop()
    assert [event_id for _, event_id, _ in producer.sent] == ids


@dataclass
class StuckAfterFailure(FakeProducer):
    """Fails the first send, then never acknowledges anything again: kafka-python 3.0.12's
    idempotent producer after an expired batch (it drops its producer id for good)."""

    broken: bool = False
    closed: bool = False

    def send(self, topic, key, value, headers):
        if self.broken:
            return FakeFuture(TimeoutError("not acknowledged in time"))
        self.broken = True
        return FakeFuture(RuntimeError("leader lost; batch expired"))

    def close(self, timeout=None):
        self.closed = True


def test_a_failed_round_replaces_the_producer_so_a_stuck_one_cannot_hold_the_outbox(
    store, outbox, payloads
) -> None:
    db, tables = store
    _write(store, outbox, payloads, ["a", "b", "c"])
    stuck = StuckAfterFailure()
    fresh = FakeProducer()
    made = iter([stuck, fresh])
    relay = OutboxRelay(db, tables, lambda: next(made), "room", backoff_base=0.01, backoff_cap=0.05)
    relay.start()
    try:
        wait_for(lambda: relay.backlog() == 0, what="delivery through a new producer")
    finally:
        relay.stop()
    assert stuck.closed
    assert len(fresh.sent) == 3


def _oldest_age(service: str) -> float:
    return REGISTRY.get_sample_value("outbox_oldest_unsent_age_seconds", {"service": service}) or 0.0


def test_the_relay_loop_exports_the_age_of_the_oldest_unsent_row(store, outbox, payloads) -> None:
    db, tables = store
    [event_id] = _write(store, outbox, payloads, ["a"])
    with db.transaction() as session:  # written two minutes ago
        o = tables.outbox
        session.execute(
            update(o)
            .where(o.c.event_id == event_id)
            .values(created_at=datetime.now(UTC) - timedelta(minutes=2))
        )
    broker_up = threading.Event()
    producer = FakeProducer()

    def factory():
        if not broker_up.is_set():
            raise ConnectionError("no broker")
        return producer

    service = f"relay-{uuid.uuid4().hex[:6]}"  # the registry is process-wide
    relay = OutboxRelay(db, tables, factory, service, poll_interval=0.05, backoff_base=0.01, backoff_cap=0.05)
    relay.start()
    try:
        wait_for(lambda: _oldest_age(service) >= 120, what="the age of the stuck row")
        assert _oldest_age(service) < 600
        broker_up.set()
        wait_for(lambda: relay.healthy and _oldest_age(service) == 0, what="age 0 once it is published")
        assert [sent[1] for sent in producer.sent] == [event_id]
    finally:
        relay.stop()
