"""A 3-broker cluster (RF 3, min.insync.replicas 2) under broker loss: the real relay on a SQLite
outbox, the real consumer on another SQLite database, brokers killed with SIGKILL.

- One broker dies during a burst: every event whose outbox row committed is applied exactly
  once, after the partition leaders moved.
- Two brokers die: ``acks=all`` cannot complete, the rows stay unpublished in the outbox; once
  the brokers are back, every row drains and is applied exactly once.

One cluster for the module (``kafka_cluster``, root conftest); each test uses its own topic and
consumer group. The producer runs with the production settings (``create_producer``).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from common.db import Database
from common.messaging import (
    AvroCodec,
    ConsumerRunner,
    Envelope,
    MessagingTables,
    Outbox,
    OutboxRelay,
    ensure_topics,
    messaging_tables,
)
from stack.kafka_cluster import KafkaCluster

from .conftest import FAST_CONSUMER, read_topic, reservation

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]

SERVICE = "it3"
KEYS = 20
# Generous: a leader moves ~9 s (broker.session.timeout.ms) after its broker died, and the
# relay's failed sends take up to delivery_timeout_ms (10 s) each; a loaded 2-core box is slow.
DRAIN_TIMEOUT_S = 180.0
# The relay backs off from 0.2 s to 2 s (production: 0.5 s to 30 s) so recovery is seen early.
RELAY: dict[str, Any] = {"poll_interval": 0.2, "backoff_base": 0.2, "backoff_cap": 2.0}


def wait_for(condition: Any, timeout: float, what: str, state: Any = None) -> float:
    """Poll until ``condition()`` is truthy; the seconds it took (fails at ``timeout``, saying
    ``state()`` when given)."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            detail = f": {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(0.1)
    return time.monotonic() - began


@dataclass
class Side:
    """One service's database: its messaging tables and (consumer side) the applied effects."""

    db: Database
    tables: MessagingTables
    effects: Table

    def applied(self) -> Counter[str]:
        """How many times each event_id was applied by the handler."""
        with self.db.read() as session:
            return Counter(session.scalars(select(self.effects.c.event_id)))

    def unpublished(self) -> int:
        o = self.tables.outbox
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).where(o.c.published_at.is_(None))) or 0)

    def attempted(self) -> int:
        """Unpublished rows the relay tried and failed at least once."""
        o = self.tables.outbox
        query = select(func.count()).where(o.c.published_at.is_(None), o.c.attempts > 0)
        with self.db.read() as session:
            return int(session.scalar(query) or 0)


def _side(path: Path) -> Side:
    metadata = MetaData()
    tables = messaging_tables(metadata)
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("event_id", String(36), nullable=False),
    )
    db = Database(f"sqlite:///{path}")
    metadata.create_all(db.engine)
    return Side(db, tables, effects)


@dataclass
class Pipeline:
    """Outbox → relay → 3 brokers → consumer, for one topic."""

    cluster: KafkaCluster
    topic: str
    producer: Side
    consumer: Side
    outbox: Outbox
    relay: OutboxRelay
    runner: ConsumerRunner

    def write(self, i: int) -> str:
        """Commit one event (its outbox row); its event_id once committed."""
        key = f"res-{i % KEYS}"
        with self.producer.db.transaction() as session:
            return self.outbox.add(session, "ReservationCreated", key, reservation(key)).event_id

    def drained(self, expected: set[str]) -> bool:
        return self.producer.unpublished() == 0 and expected <= set(self.consumer.applied())

    def report(self) -> str:
        """Where things stand (for a failure message)."""
        return (
            f"unpublished rows {self.producer.unpublished()}, applied {len(self.consumer.applied())}, "
            f"relay healthy {self.relay.healthy} ({self.relay.last_error}), "
            f"consumer healthy {self.runner.healthy} ({self.runner.last_error}), {self.cluster!r}"
        )

    def leader_of(self, partition: int) -> int:
        admin = KafkaAdminClient(bootstrap_servers=self.cluster.bootstrap_servers)
        try:
            (described,) = admin.describe_topics([self.topic])
        finally:
            admin.close()
        return int(next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition))


@pytest.fixture
def pipeline(kafka_cluster: KafkaCluster, codec: AvroCodec, tmp_path: Path) -> Iterator[Pipeline]:
    bootstrap = kafka_cluster.bootstrap_servers
    topic = f"it3.{uuid.uuid4().hex[:10]}.reservations"
    ensure_topics(bootstrap, [topic])  # the services' own call: the broker's defaults apply
    producer, consumer = _side(tmp_path / "producer.db"), _side(tmp_path / "consumer.db")
    outbox = Outbox(producer.tables, codec, "room", topics={"ReservationCreated": topic})
    relay = OutboxRelay.for_kafka(producer.db, producer.tables, bootstrap, SERVICE, **RELAY)
    outbox.on_commit(relay.wake)

    def apply(session: Any, envelope: Envelope, payload: dict[str, Any]) -> None:
        session.execute(consumer.effects.insert().values(event_id=envelope.event_id))

    runner = ConsumerRunner(
        f"it3.consumer.{uuid.uuid4().hex[:8]}",
        [topic],
        consumer.db,
        consumer.tables,
        codec,
        {"ReservationCreated": apply},
        bootstrap,
        SERVICE,
        poll_timeout=0.2,
        consumer_config=FAST_CONSUMER,
    )
    relay.start()
    runner.start()
    try:
        yield Pipeline(kafka_cluster, topic, producer, consumer, outbox, relay, runner)
    finally:
        relay.stop()
        runner.stop()
        producer.db.dispose()
        consumer.db.dispose()


def test_topics_have_three_replicas_and_min_insync_two(pipeline: Pipeline) -> None:
    admin = KafkaAdminClient(bootstrap_servers=pipeline.cluster.bootstrap_servers)
    try:
        (described,) = admin.describe_topics([pipeline.topic])
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, pipeline.topic)], config_filter="all"
        )
    finally:
        admin.close()
    assert len(described["partitions"]) == 3
    assert all(len(p["replica_nodes"]) == 3 for p in described["partitions"])
    assert configs["topic"][pipeline.topic]["min.insync.replicas"]["value"] == "2"


def test_two_brokers_killed_keep_the_rows_in_the_outbox_until_they_return(pipeline: Pipeline) -> None:
    before = {pipeline.write(i) for i in range(20)}
    wait_for(
        lambda: pipeline.drained(before),
        DRAIN_TIMEOUT_S,
        "the events written while all ran",
        state=pipeline.report,
    )

    survivor = pipeline.leader_of(0)
    victims = [b for b in pipeline.cluster.brokers if b.node_id != survivor]
    for broker in victims:
        broker.kill()
    during = {pipeline.write(i) for i in range(50)}

    # The relay tries, and acks=all cannot complete (1 in-sync replica < min.insync.replicas 2,
    # and no controller majority to move a leader): every row stays unpublished.
    wait_for(
        lambda: pipeline.producer.attempted() > 0,
        DRAIN_TIMEOUT_S,
        "a failed publish attempt",
        state=pipeline.report,
    )
    wait_for(lambda: not pipeline.relay.healthy, 30, "the relay to report the failure", pipeline.report)
    assert pipeline.producer.unpublished() == len(during)
    assert not during & set(pipeline.consumer.applied())  # none got through

    restarted = time.monotonic()
    pipeline.cluster.start(timeout=240)  # the two killed nodes, on their data
    back_s = time.monotonic() - restarted
    wait_for(
        lambda: pipeline.drained(before | during),
        DRAIN_TIMEOUT_S,
        "the outbox to drain",
        state=pipeline.report,
    )
    drain_s = time.monotonic() - restarted

    applied = pipeline.consumer.applied()
    assert set(applied) == before | during
    assert [e for e, n in applied.items() if n > 1] == []
    print(
        f"\n2 of 3 brokers killed: {len(during)} rows held in the outbox; brokers back in "
        f"{back_s:.1f} s, drained {drain_s:.1f} s after the restart began; "
        f"{len(applied)} applied once each"
    )


# Last: it leaves a broker down, and no test after it waits for that one to come back.
def test_one_broker_killed_during_a_burst_loses_nothing_and_doubles_nothing(pipeline: Pipeline) -> None:
    total, kill_after = 300, 100
    committed: list[str] = []
    killed_at: list[float] = []
    victim = pipeline.leader_of(0)  # it leads at least one partition: a leader must move

    def burst() -> None:
        for i in range(total):
            committed.append(pipeline.write(i))
            if i + 1 == kill_after:
                pipeline.cluster.broker(victim).kill()  # SIGKILL: no controlled shutdown
                killed_at.append(time.monotonic())
            time.sleep(0.005)  # a burst spread over ~2 s, so the kill lands in the middle of it

    writer = threading.Thread(target=burst)
    writer.start()
    writer.join(timeout=120)
    assert not writer.is_alive()
    assert len(committed) == total
    assert killed_at
    expected = set(committed)

    wait_for(
        lambda: pipeline.drained(expected),
        DRAIN_TIMEOUT_S,
        "every committed event applied",
        state=pipeline.report,
    )
    drain_s = time.monotonic() - killed_at[0]

    applied = pipeline.consumer.applied()
    assert set(applied) == expected  # nothing lost, nothing invented
    assert [e for e, n in applied.items() if n > 1] == []  # nothing applied twice
    copies = Counter(
        Envelope.from_headers(r.headers, r.key).event_id
        for r in read_topic(pipeline.cluster.bootstrap_servers, pipeline.topic, total, timeout=60)
    )
    print(
        f"\n1 of 3 brokers killed (node {victim}) after {kill_after} of {total} events: drained "
        f"{drain_s:.1f} s after the kill; {len(applied)} applied once each; "
        f"{sum(copies.values()) - len(copies)} duplicate copies in Kafka (deduplicated)"
    )
