"""The real Kafka broker manager: jars, topics, produce/consume, stop/start on the same data."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from stack.kafka import (
    KafkaBroker,
    KafkaSetupError,
    KafkaStartError,
    default_run_dir,
    ensure_kafka_libs,
    ensure_topics,
)
from stack.ports import free_port_block


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _consume(bootstrap: str, topic: str, group: str, expected: int, timeout: float = 30) -> list[bytes]:
    """Read ``expected`` values with consumer group ``group`` (from the earliest offset), commit."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(values) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
        consumer.commit()
    finally:
        consumer.close()
    return values


@pytest.fixture
def admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    yield client
    client.close()


@pytest.mark.kafka
def test_ensure_topics_creates_topic_and_dlq_with_three_partitions_idempotently(
    kafka_bootstrap: str, admin: KafkaAdminClient
) -> None:
    topic = f"t.ensure.{uuid.uuid4().hex[:8]}"

    assert ensure_topics(kafka_bootstrap, [topic]) == [topic, f"{topic}.dlq"]
    # Second call: nothing to create, no error.
    assert ensure_topics(kafka_bootstrap, [topic, f"{topic}.dlq"]) == [topic, f"{topic}.dlq"]

    described = {t["name"]: t for t in admin.describe_topics([topic, f"{topic}.dlq"])}
    for name in (topic, f"{topic}.dlq"):
        partitions = described[name]["partitions"]
        assert len(partitions) == 3
        assert all(p["leader_id"] == 1 for p in partitions)


@pytest.mark.kafka
@pytest.mark.timeout(600)  # a JVM restart on a loaded 2-core machine took more than 60 s
def test_messages_survive_a_broker_stop_and_start(kafka_broker: KafkaBroker) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = f"t.restart.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [topic])
    sent = [f"event-{i}".encode() for i in range(9)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        for i, value in enumerate(sent):
            producer.send(topic, key=f"k{i % 3}".encode(), value=value).get(timeout=10)
    finally:
        producer.close()
    assert sorted(_consume(bootstrap, topic, "g-first", len(sent))) == sorted(sent)

    pid = kafka_broker.pid
    assert pid is not None
    kafka_broker.stop()
    assert not kafka_broker.is_running
    assert not _pid_alive(pid)
    assert not _port_open(kafka_broker.port)
    assert not _port_open(kafka_broker.controller_port)

    kafka_broker.start(timeout=240)
    assert kafka_broker.is_running
    assert kafka_broker.pid != pid
    # The log survived: a new group reads every earlier message again...
    assert sorted(_consume(bootstrap, topic, "g-after-restart", len(sent))) == sorted(sent)
    # ...and the first group's committed offsets survived too.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="g-first", enable_auto_commit=False)
    try:
        committed = [consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3)]
    finally:
        consumer.close()
    assert sum(committed) == len(sent)


@pytest.mark.kafka
def test_start_fails_fast_when_the_port_is_taken(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    libs = ensure_kafka_libs(default_run_dir())
    other = KafkaBroker(tmp_path, port=kafka_broker.port, controller_port=free_port_block(1), libs_dir=libs)
    with pytest.raises(KafkaStartError, match="already in use"):
        other.start()
    assert not other.is_running
    assert not other.log_file.exists()  # refused before any JVM was started


def test_jars_are_cached_after_the_first_download(monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_kafka_libs(default_run_dir())
    # Without Java and Maven on PATH a download would fail: the second call must not need one.
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert ensure_kafka_libs(default_run_dir()) == first
    assert list(first.glob("kafka_2.13-*.jar"))


def test_kafka_home_libs_are_used_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = tmp_path / "kafka_home" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    monkeypatch.setenv("KAFKA_HOME", str(libs.parent))
    assert ensure_kafka_libs(tmp_path / "run") == libs

    monkeypatch.setenv("KAFKA_HOME", str(tmp_path))
    with pytest.raises(KafkaSetupError, match="KAFKA_HOME"):
        ensure_kafka_libs(tmp_path / "run")


def test_missing_java_and_maven_give_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(KafkaSetupError, match=r"Java 17\+ and Maven"):
        ensure_kafka_libs(tmp_path / "run")
    assert not (tmp_path / "run" / "kafka" / "libs").exists()


def test_a_non_kafka_data_folder_is_refused_not_wiped(tmp_path: Path) -> None:
    port = free_port_block(2)
    libs = ensure_kafka_libs(default_run_dir())
    broker = KafkaBroker(tmp_path, port=port, controller_port=port + 1, libs_dir=libs)
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "precious.txt").write_text("keep me")
    with pytest.raises(KafkaSetupError, match=r"meta\.properties"):
        broker.start()
    assert (broker.data_dir / "precious.txt").read_text() == "keep me"
    assert not broker.is_running
