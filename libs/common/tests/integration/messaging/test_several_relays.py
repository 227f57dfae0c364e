"""Three relays on one PostgreSQL outbox, on the real broker: every event published exactly
once, in order per key (``FOR UPDATE SKIP LOCKED`` plus the earlier-row-of-the-key rule)."""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import MetaData

from common.db import Database
from common.messaging import AvroCodec, Envelope, MessagingTables, Outbox, OutboxRelay, messaging_tables

from .conftest import read_topic, reservation, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

EVENTS, KEYS, RELAYS = 3_000, 50, 3
PER_KEY = EVENTS // KEYS
WRITTEN_BEFORE_START = 600  # a backlog to share at once, then the rest while the relays run
PER_TRANSACTION = 10
BATCH = 25  # small batches: each holds some keys and not others, so relays really interleave
DELIVERY_TIMEOUT_S = 300  # 3,000 acks=all round trips on a loaded 2-core machine


@dataclass
class Shared:
    url: str
    tables: MessagingTables


@pytest.fixture
def shared_outbox(new_postgres_database) -> Shared:
    metadata = MetaData()
    tables = messaging_tables(metadata)
    url = new_postgres_database("relays")
    db = Database(url)
    metadata.create_all(db.engine)
    db.dispose()
    return Shared(url, tables)


def _sequence(reservation_id: str) -> tuple[str, int]:
    key, _, number = reservation_id.rpartition("#")
    return key, int(number)


def test_three_relays_publish_3000_events_of_50_keys_exactly_once_in_order_per_key(
    kafka_broker, shared_outbox: Shared, codec: AvroCodec, topic: str
) -> None:
    # Each event's payload names its key and its place in that key's sequence: key#n.
    rng = random.Random(9)
    order = [f"key-{k:02d}" for k in range(KEYS) for _ in range(PER_KEY)]
    rng.shuffle(order)
    next_number: Counter[str] = Counter()
    planned: list[tuple[str, str]] = []  # (key, reservation_id) in commit order
    for key in order:
        planned.append((key, f"{key}#{next_number[key]}"))
        next_number[key] += 1

    writer_db = Database(shared_outbox.url)
    outbox = Outbox(shared_outbox.tables, codec, "room", topics={"ReservationCreated": topic})
    written: list[str] = []

    def write(events: list[tuple[str, str]]) -> None:
        for start in range(0, len(events), PER_TRANSACTION):
            with writer_db.transaction() as session:
                for key, reservation_id in events[start : start + PER_TRANSACTION]:
                    payload = reservation(reservation_id)
                    written.append(outbox.add(session, "ReservationCreated", key, payload).event_id)

    write(planned[:WRITTEN_BEFORE_START])

    # Three relays as three processes would be: each its own engine, its own producer.
    relay_dbs = [Database(shared_outbox.url) for _ in range(RELAYS)]
    relays = [
        OutboxRelay.for_kafka(
            db,
            shared_outbox.tables,
            kafka_broker.bootstrap_servers,
            f"it-relay-{n}",
            batch_size=BATCH,
            poll_interval=0.05,
            backoff_base=0.1,
            backoff_cap=1.0,
        )
        for n, db in enumerate(relay_dbs)
    ]
    for relay in relays:
        outbox.on_commit(relay.wake)
        relay.start()
    try:
        writer = threading.Thread(target=write, args=(planned[WRITTEN_BEFORE_START:],))
        writer.start()
        writer.join(DELIVERY_TIMEOUT_S)
        assert not writer.is_alive(), "the writer did not finish"
        records = read_topic(kafka_broker.bootstrap_servers, topic, EVENTS, timeout=DELIVERY_TIMEOUT_S)
        wait_for(lambda: relays[0].backlog() == 0, timeout=60, what="every row marked published")
    finally:
        for relay in relays:
            relay.stop()
        for db in [*relay_dbs, writer_db]:
            db.dispose()

    # Exactly once: every written event, none twice, nothing else.
    event_ids = Counter(Envelope.from_headers(r.headers, r.key).event_id for r in records)
    assert sum(event_ids.values()) == EVENTS, f"{sum(event_ids.values()) - EVENTS} extra records"
    assert set(event_ids) == set(written)
    assert max(event_ids.values()) == 1

    # In order per key: a key's records (one partition, offset order) count 0, 1, 2, ...
    sequences: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in records:  # sorted by (partition, offset)
        envelope = Envelope.from_headers(record.headers, record.key)
        _, _, payload = codec.decode(record.value, envelope.schema_fingerprint)
        key, number = _sequence(payload["reservation_id"])
        assert key == envelope.key
        sequences[key].append(number)
        partitions[key].add(record.partition)
    assert len(sequences) == KEYS
    out_of_order = {k: s for k, s in sequences.items() if s != list(range(PER_KEY))}
    assert not out_of_order, f"keys out of order: {sorted(out_of_order)[:5]}"
    assert all(len(p) == 1 for p in partitions.values())

    # The three shared the work (reported, not required: which relay wins a batch is timing).
    shares = [
        REGISTRY.get_sample_value("outbox_published_total", {"service": f"it-relay-{n}", "topic": topic}) or 0
        for n in range(RELAYS)
    ]
    print(f"rows published per relay: {shares}")
    assert sum(shares) == EVENTS
