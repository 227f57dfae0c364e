"""Fixtures of the member tests: a migrated database, the app in-process with its real Kafka
consumers, user tokens, and a producer that publishes events as the other services would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

import member_service
from common.db import Database
from common.messaging import AvroCodec, Envelope, create_producer, ensure_topics, topic_for
from common.messaging.envelope import utc_now_iso
from common.testing.apps import migrated, running
from common.testing.tokens import TestUsers
from member_service.app import create_app
from member_service.settings import MemberSettings

MIGRATIONS = Path(member_service.__file__).parent / "migrations"
# The service's consumer groups and their topics (as wired in bootstrap.py).
GROUPS = {
    "member.profiles": [topic_for("UserRegistered")],
    "member.history": [topic_for("ReservationCreated"), topic_for("LicenseActivated")],
}


@dataclass(frozen=True)
class Sent:
    """An event as it was put on Kafka (to deliver it again, byte for byte)."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    envelope: Envelope


class Events:
    """Publishes events into the real topics, encoded and enveloped like the outbox does."""

    def __init__(self, bootstrap: str, codec: AvroCodec) -> None:
        self.codec = codec
        self._producer = create_producer(bootstrap, f"member-tests-{uuid.uuid4().hex[:6]}")

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
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``within`` seconds."""
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


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    return AvroCodec.from_contracts()


@pytest.fixture
def events(kafka_bootstrap: str, codec: AvroCodec) -> Iterator[Events]:
    publisher = Events(kafka_bootstrap, codec)
    yield publisher
    publisher.close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> MemberSettings:
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    return migrated(
        MemberSettings(
            env="test",
            kafka_bootstrap_servers=kafka_bootstrap,
            service_keys_dir=tmp_path / "keys",
            outbox_poll_interval_s=0.2,
        ),
        MIGRATIONS,
    )


@pytest.fixture
def db(settings: MemberSettings) -> Iterator[Database]:
    """The service's database, for arranging and inspecting what the API doesn't show."""
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def users() -> TestUsers:
    return TestUsers()


@pytest.fixture
async def client(
    settings: MemberSettings, users: TestUsers, kafka_bootstrap: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The member app, running (consumers, relay) and trusting ``users``' tokens."""
    start_groups_at_end(kafka_bootstrap, GROUPS)
    async with running(create_app, settings, prepare=users.trust) as http:
        yield http
