"""Fixtures of the notification tests: a migrated database, the app in-process with its real
Kafka consumers and mail sender, a real SMTP sink, user tokens, and a producer that publishes
events as the other services would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import REGISTRY

import notification_service
from common.db import Database
from common.messaging import AvroCodec, Envelope, create_producer, ensure_topics, topic_for
from common.messaging.envelope import utc_now_iso
from common.testing.apps import migrated, running
from common.testing.tokens import TestUsers
from notification_service.app import create_app
from notification_service.settings import NotificationSettings
from stack.kafka import free_port
from stack.smtp_sink import MailRecord, SmtpSink

MIGRATIONS = Path(notification_service.__file__).parent / "migrations"
# The service's consumer groups and their topics (as wired in bootstrap.py).
GROUPS = {
    "notification.users": [topic_for("UserRegistered")],
    "notification.members": [topic_for("MemberUpdated")],
    "notification.reservations": [topic_for("ReservationCreated")],
    "notification.licenses": [topic_for("LicenseActivated")],
}

StartApp = Callable[[NotificationSettings], AbstractAsyncContextManager[httpx.AsyncClient]]


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
        self._producer = create_producer(bootstrap, f"notification-tests-{uuid.uuid4().hex[:6]}")

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
    topics: starting at the end, this test's app sees only the events this test publishes
    (and doesn't spend its retries on foreign members it has no contact for).
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


def mails_to(sink: SmtpSink, address: str) -> list[MailRecord]:
    return [mail for mail in sink.messages if mail["to"] == [address]]


def consumer_metric(name: str, group: str, topic: str) -> float:
    labels = {"service": "notification", "consumer": group, "topic": topic}
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    return AvroCodec.from_contracts()


@pytest.fixture
def events(kafka_bootstrap: str, codec: AvroCodec) -> Iterator[Events]:
    publisher = Events(kafka_bootstrap, codec)
    yield publisher
    publisher.close()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> NotificationSettings:
    """Settings with quick mail retries; SMTP points at a free port (``sink`` listens there)."""
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    return migrated(
        NotificationSettings(
            env="test",
            kafka_bootstrap_servers=kafka_bootstrap,
            service_keys_dir=tmp_path / "keys",
            smtp_port=free_port(),
            smtp_timeout_s=5.0,
            mail_poll_interval_s=0.1,
            mail_backoff_base_s=0.1,
            mail_backoff_cap_s=0.5,
            mail_max_attempts=40,  # ~10-20 s: room for a test to bring the SMTP server up
        ),
        MIGRATIONS,
    )


@pytest.fixture
def sink(settings: NotificationSettings, tmp_path: Path) -> Iterator[SmtpSink]:
    """The SMTP sink, listening where the app sends mail."""
    with SmtpSink(port=settings.smtp_port, mailbox=tmp_path / "mailbox.jsonl") as smtp:
        yield smtp


@pytest.fixture
def db(settings: NotificationSettings) -> Iterator[Database]:
    """The service's database, for inspecting what the API doesn't show."""
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def users() -> TestUsers:
    return TestUsers()


@pytest.fixture
def start(users: TestUsers, kafka_bootstrap: str) -> StartApp:
    """Run the app (consumers, mail sender) with the given settings, trusting ``users``' tokens."""

    @asynccontextmanager
    async def _start(settings: NotificationSettings) -> AsyncIterator[httpx.AsyncClient]:
        start_groups_at_end(kafka_bootstrap, GROUPS)
        async with running(create_app, settings, prepare=users.trust) as http:
            yield http

    return _start


@pytest.fixture
async def client(start: StartApp, settings: NotificationSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with start(settings) as http:
        yield http
