"""Fixtures for messaging tests against the real Kafka broker (root conftest's ``kafka_broker``).

Every test uses its own topic and consumer group, so tests never see each other's messages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from common.context import TraceContext
from common.db import Database
from common.messaging import (
    AvroCodec,
    ConsumerRunner,
    Envelope,
    MessagingTables,
    create_producer,
    ensure_topics,
    messaging_tables,
)
from common.messaging.envelope import utc_now_iso

SERVICE = "it"
# Quick group joins and fetches for tests (the broker's minimum session timeout is 6 s).
FAST_CONSUMER = {
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 500,
    "fetch_max_wait_ms": 50,
    "bootstrap_timeout_ms": 5_000,
}


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
    """Everything in ``topic`` once it holds at least ``count`` messages (no consumer group)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        assert tps, f"topic {topic} does not exist"
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
            if len(records) >= count:
                end = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= end[tp] for tp in tps):
                    return sorted(records, key=lambda r: (r.partition, r.offset))
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: {len(records)} of {count} messages after {timeout}s")
    finally:
        consumer.close(autocommit=False)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": SERVICE, **labels}) or 0.0


@dataclass
class Service:
    """A service's database: messaging tables plus an ``effects`` table the handlers write."""

    db: Database
    tables: MessagingTables
    effects: Table

    def effect_count(self, event_id: str | None = None) -> int:
        query = select(func.count()).select_from(self.effects)
        if event_id is not None:
            query = query.where(self.effects.c.event_id == event_id)
        with self.db.read() as session:
            return int(session.scalar(query) or 0)

    def processed_count(self, consumer: str, event_id: str | None = None) -> int:
        pe = self.tables.processed_events
        query = select(func.count()).select_from(pe).where(pe.c.consumer == consumer)
        if event_id is not None:
            query = query.where(pe.c.event_id == event_id)
        with self.db.read() as session:
            return int(session.scalar(query) or 0)


@pytest.fixture
def service(new_database) -> Iterator[Service]:
    """The service's database, on SQLite and on PostgreSQL (the test runs once on each)."""
    metadata = MetaData()
    tables = messaging_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("event_id", String(36), nullable=False),
        Column("key", String(100), nullable=False),
    )
    db = Database(new_database("service"))
    metadata.create_all(db.engine)
    yield Service(db, tables, effects)
    db.dispose()


@pytest.fixture
def topic(kafka_broker) -> str:
    """A fresh topic (and its .dlq twin) for this test only."""
    name = f"it.{uuid.uuid4().hex[:10]}.reservations"
    ensure_topics(kafka_broker.bootstrap_servers, [name])
    return name


def reservation(reservation_id: str, nights: int = 2) -> dict[str, Any]:
    return {
        "reservation_id": reservation_id,
        "member_id": "m-1",
        "room_id": "room-101",
        "check_in": date(2025, 4, 1),
        "check_out": date(2025, 4, 1 + nights),
        "nights": nights,
        "created_at": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
    }


@dataclass
class Message:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    envelope: Envelope


def make_message(codec: AvroCodec, key: str, nights: int = 2) -> Message:
    """A valid ReservationCreated message, as a producing service would write it."""
    value, fingerprint, version = codec.encode("ReservationCreated", reservation(key, nights))
    envelope = Envelope(
        event_id=str(uuid.uuid4()),
        event_type="ReservationCreated",
        schema_version=version,
        schema_fingerprint=fingerprint,
        occurred_at=utc_now_iso(),
        producer="room",
        traceparent=TraceContext.new().header(),
        request_id=f"req-{uuid.uuid4().hex[:8]}",
        key=key,
    )
    return Message(key.encode(), value, envelope.to_headers(), envelope)


@pytest.fixture
def produce(kafka_broker) -> Iterator[Callable[..., Any]]:
    """Send raw bytes and headers to a topic and wait for the ack; returns the record metadata."""
    producer = create_producer(kafka_broker.bootstrap_servers, "it-test-producer")

    def _produce(topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        return producer.send(topic, key=key, value=value, headers=headers).get(timeout=20)

    yield _produce
    producer.close(timeout=5)


@dataclass
class MailOutage:
    """A poison message (its handler fails while ``mail_server_up`` is False) produced before a
    fine one; ``handler`` records each event it applies in ``applied`` and the service's effects."""

    service: Service
    poison: Message
    fine: Message
    sent: Any  # the poison's record metadata (partition, offset)
    applied: list[str]
    mail_server_up: bool = False

    def handler(self, session: Any, envelope: Envelope, payload: dict[str, Any]) -> None:
        if not self.mail_server_up and envelope.event_id == self.poison.envelope.event_id:
            raise ConnectionError("mail server down")
        session.execute(self.service.effects.insert().values(event_id=envelope.event_id, key=envelope.key))
        self.applied.append(envelope.event_id)


@pytest.fixture
def mail_outage(service: Service, codec: AvroCodec, topic: str, produce: Callable[..., Any]) -> MailOutage:
    """On ``topic``: a poison (res-1) then a fine message (res-2), and the handler of both."""
    poison, fine = make_message(codec, "res-1"), make_message(codec, "res-2")
    sent = produce(topic, poison.key, poison.value, poison.headers)
    produce(topic, fine.key, fine.value, fine.headers)
    return MailOutage(service, poison, fine, sent, [])


@pytest.fixture
def make_runner(kafka_broker, service: Service, codec: AvroCodec) -> Iterator[Callable[..., ConsumerRunner]]:
    """Start ConsumerRunners tuned for tests; all are stopped at teardown."""
    runners: list[ConsumerRunner] = []

    def _make(
        topics: list[str], handlers: dict[str, Any], name: str | None = None, **kwargs: Any
    ) -> ConsumerRunner:
        settings: dict[str, Any] = {
            "max_attempts": 3,
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "poll_timeout": 0.2,
            "consumer_config": FAST_CONSUMER,
            **kwargs,
        }
        runner = ConsumerRunner(
            name or f"it.consumer.{uuid.uuid4().hex[:8]}",
            topics,
            service.db,
            service.tables,
            codec,
            handlers,
            kafka_broker.bootstrap_servers,
            SERVICE,
            **settings,
        )
        runners.append(runner)
        runner.start()
        return runner

    yield _make
    for runner in runners:
        runner.stop()
