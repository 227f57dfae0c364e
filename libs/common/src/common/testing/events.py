"""Kafka helpers for tests: publish events as a service's outbox would, isolate consumer groups,
and wait for an outcome with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from common.messaging import AvroCodec, Envelope, create_producer, ensure_topics, topic_for
from common.messaging.envelope import utc_now_iso


@dataclass(frozen=True)
class Sent:
    """An event as it was put on Kafka (to deliver it again, byte for byte)."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    envelope: Envelope


class EventPublisher:
    """Publishes events into the real topics, encoded and enveloped like the outbox does."""

    def __init__(self, bootstrap: str, codec: AvroCodec) -> None:
        self.codec = codec
        self._producer = create_producer(bootstrap, f"tests-{uuid.uuid4().hex[:6]}")

    def publish(self, event_type: str, key: str, payload: Mapping[str, Any]) -> Sent:
        value, fingerprint, version = self.codec.encode(event_type, dict(payload))
        envelope = Envelope(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            schema_version=version,
            schema_fingerprint=fingerprint,
            occurred_at=utc_now_iso(),
            producer="tests",
            key=key,
        )
        sent = Sent(topic_for(event_type), key.encode(), value, envelope.to_headers(), envelope)
        return self.redeliver(sent)

    def redeliver(self, sent: Sent) -> Sent:
        self._producer.send(sent.topic, key=sent.key, value=sent.value, headers=sent.headers).get(timeout=20)
        return sent

    def close(self) -> None:
        self._producer.close(timeout=5)


def start_groups_at_end(bootstrap: str, groups: Mapping[str, list[str]]) -> None:
    """Commit each group's offsets at the current end of its topics.

    One broker serves the whole test session and other services' tests publish to the same
    topics: starting at the end, this test's app sees only the events this test publishes.
    """
    ensure_topics(bootstrap, {t for topics in groups.values() for t in topics})
    for group, topics in groups.items():
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        try:
            tps = [
                TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            consumer.assign(tps)
            consumer.seek_to_end(*tps)
            consumer.commit({tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in tps})
        finally:
            consumer.close(autocommit=False)


async def eventually(check: Callable[[], Awaitable[Any] | Any], what: str, within: float = 30.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)
