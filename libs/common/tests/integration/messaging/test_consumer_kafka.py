"""The consumer runner against the real broker: dedup, retries, dead letters, offsets."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.structs import TopicPartition

from common.context import TraceContext, current_trace, request_id_var
from common.messaging import PermanentError

from .conftest import FAST_CONSUMER, make_message, metric, read_topic, wait_for

pytestmark = pytest.mark.kafka


class Flaky(Exception):
    pass


def recording_handler(service, calls: list[str], fail_first: int = 0, error: type[Exception] = Flaky):
    """Writes one effect row per event; raises AFTER writing for the first ``fail_first`` calls."""
    lock = threading.Lock()

    def handle(session, envelope, payload: dict[str, Any]) -> None:
        with lock:
            calls.append(envelope.event_id)
            attempt = len(calls)
        session.execute(
            service.effects.insert().values(event_id=envelope.event_id, key=payload["reservation_id"])
        )
        if attempt <= fail_first:
            raise error(f"attempt {attempt} fails")

    return handle


def outcome(runner, topic: str, name: str) -> float:
    return metric("messages_consumed_total", consumer=runner.name, topic=topic, outcome=name)


def test_the_same_event_twice_is_applied_once(service, codec, topic, produce, make_runner) -> None:
    message = make_message(codec, "res-1")
    produce(topic, message.key, message.value, message.headers)
    produce(topic, message.key, message.value, message.headers)  # a redelivery, byte for byte
    calls: list[str] = []
    runner = make_runner([topic], {"ReservationCreated": recording_handler(service, calls)})

    wait_for(lambda: outcome(runner, topic, "duplicate") == 1, what="the duplicate to be skipped")
    assert outcome(runner, topic, "applied") == 1
    assert metric("messages_duplicate_total", consumer=runner.name, topic=topic) == 1
    assert service.effect_count(message.envelope.event_id) == 1
    assert service.processed_count(runner.name, message.envelope.event_id) == 1
    assert calls == [message.envelope.event_id]  # the handler never saw the duplicate


def test_handler_runs_in_the_producers_trace_and_request(service, codec, topic, produce, make_runner) -> None:
    message = make_message(codec, "res-1")
    produce(topic, message.key, message.value, message.headers)
    seen: list[tuple[TraceContext | None, str | None]] = []

    def handler(session, envelope, payload) -> None:
        seen.append((current_trace(), request_id_var.get()))

    make_runner([topic], {"ReservationCreated": handler})
    wait_for(lambda: seen, what="the handler")
    [(child, request_id)] = seen
    parent = TraceContext.parse(message.envelope.traceparent)
    assert parent is not None
    assert child is not None
    assert child.trace_id == parent.trace_id  # same trace...
    assert child.span_id != parent.span_id  # ...a new span (the processing span) for the handling
    assert request_id == message.envelope.request_id


def test_handler_failing_after_the_dedup_insert_leaves_nothing_then_applies_once(
    service, codec, topic, produce, make_runner
) -> None:
    message = make_message(codec, "res-1")
    produce(topic, message.key, message.value, message.headers)
    calls: list[str] = []
    seen_before_retry: list[tuple[int, int]] = []
    fail_once = recording_handler(service, calls, fail_first=1)
    event_id = message.envelope.event_id

    def handler(session, envelope, payload) -> None:
        if calls:  # the retry: what did the failed attempt leave committed?
            seen_before_retry.append(
                (service.processed_count(runner.name, event_id), service.effect_count(event_id))
            )
        fail_once(session, envelope, payload)

    runner = make_runner([topic], {"ReservationCreated": handler})
    wait_for(lambda: outcome(runner, topic, "applied") == 1, what="the event to be applied")
    assert seen_before_retry == [(0, 0)]  # the failed attempt rolled back dedup row AND effect
    assert calls == [event_id, event_id]
    assert service.effect_count(event_id) == 1
    assert service.processed_count(runner.name, event_id) == 1


def test_transient_error_is_retried_then_applied_once(service, codec, topic, produce, make_runner) -> None:
    message = make_message(codec, "res-1")
    produce(topic, message.key, message.value, message.headers)
    calls: list[str] = []
    runner = make_runner(
        [topic], {"ReservationCreated": recording_handler(service, calls, fail_first=2)}, max_attempts=5
    )
    wait_for(lambda: outcome(runner, topic, "applied") == 1, what="the event to be applied")
    assert len(calls) == 3
    assert metric("messages_retried_total", consumer=runner.name, topic=topic) == 2
    assert service.effect_count() == 1
    assert metric("messages_dead_lettered_total", consumer=runner.name, topic=topic) == 0


def _dlq_headers(record) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def test_persistent_error_goes_to_the_dlq_with_its_history_and_the_partition_moves_on(
    kafka_broker, service, codec, topic, produce, make_runner
) -> None:
    poison = make_message(codec, "res-1", nights=3)
    healthy = make_message(codec, "res-1", nights=1)  # same key: same partition, right behind
    sent = produce(topic, poison.key, poison.value, poison.headers)
    produce(topic, healthy.key, healthy.value, healthy.headers)
    calls: list[str] = []
    record_ok = recording_handler(service, calls)

    def handler(session, envelope, payload) -> None:
        if payload["nights"] == 3:
            raise Flaky("the mail server is down")
        record_ok(session, envelope, payload)

    runner = make_runner([topic], {"ReservationCreated": handler}, max_attempts=4)
    wait_for(lambda: outcome(runner, topic, "applied") == 1, what="the message behind the poison")
    assert outcome(runner, topic, "dead_lettered") == 1
    assert service.effect_count() == 1
    assert service.processed_count(runner.name, poison.envelope.event_id) == 0

    [dead] = read_topic(kafka_broker.bootstrap_servers, f"{topic}.dlq", 1)
    assert (dead.key, dead.value) == (poison.key, poison.value)
    headers = _dlq_headers(dead)
    for name, value in poison.headers:  # the original envelope travels along
        assert headers[name] == value.decode()
    assert headers["dlq_origin_topic"] == topic
    assert headers["dlq_origin_partition"] == str(sent.partition)
    assert headers["dlq_origin_offset"] == str(sent.offset)
    assert headers["dlq_consumer"] == runner.name
    history = json.loads(headers["dlq_error_history"])
    assert [entry["attempt"] for entry in history] == [1, 2, 3, 4]
    assert all(entry["error"] == "Flaky: the mail server is down" and entry["at"] for entry in history)


def test_permanent_error_skips_the_retries(kafka_broker, service, codec, topic, produce, make_runner) -> None:
    message = make_message(codec, "res-1")
    produce(topic, message.key, message.value, message.headers)
    calls: list[str] = []
    handler = recording_handler(service, calls, fail_first=99, error=PermanentError)
    runner = make_runner([topic], {"ReservationCreated": handler}, max_attempts=5)
    wait_for(lambda: outcome(runner, topic, "dead_lettered") == 1, what="the dead letter")
    assert len(calls) == 1
    [dead] = read_topic(kafka_broker.bootstrap_servers, f"{topic}.dlq", 1)
    history = json.loads(_dlq_headers(dead)["dlq_error_history"])
    assert [entry["attempt"] for entry in history] == [1]
    assert history[0]["error"].startswith("PermanentError")


def test_undecodable_messages_go_straight_to_the_dlq(
    kafka_broker, service, codec, topic, produce, make_runner
) -> None:
    garbage = make_message(codec, "res-1")
    unknown = make_message(codec, "res-1")
    unknown_headers = [
        (n, b"00000000deadbeef" if n == "schema_fingerprint" else v) for n, v in unknown.headers
    ]
    good = make_message(codec, "res-1")
    produce(topic, garbage.key, b"\xff\xfe not avro at all", garbage.headers)
    produce(topic, unknown.key, unknown.value, unknown_headers)
    produce(topic, b"res-1", b"no envelope", [("event_type", b"ReservationCreated")])
    produce(topic, good.key, good.value, good.headers)  # same key and partition, last in line
    calls: list[str] = []
    runner = make_runner([topic], {"ReservationCreated": recording_handler(service, calls)})

    wait_for(lambda: outcome(runner, topic, "applied") == 1, what="the good message after the poison")
    assert calls == [good.envelope.event_id]  # the handler never saw the poison
    assert outcome(runner, topic, "dead_lettered") == 3
    assert metric("messages_retried_total", consumer=runner.name, topic=topic) == 0
    dead = read_topic(kafka_broker.bootstrap_servers, f"{topic}.dlq", 3)
    errors = sorted(json.loads(_dlq_headers(d)["dlq_error_history"])[0]["error"].split(":")[0] for d in dead)
    assert errors == ["UndecodableMessage", "UndecodableMessage", "UnknownSchema"]
    assert all(len(json.loads(_dlq_headers(d)["dlq_error_history"])) == 1 for d in dead)


def test_events_without_a_handler_are_skipped(codec, topic, produce, make_runner) -> None:
    message = make_message(codec, "res-1")
    produce(topic, message.key, message.value, message.headers)
    runner = make_runner([topic], {"MemberUpdated": lambda session, envelope, payload: None})
    wait_for(lambda: outcome(runner, topic, "skipped") == 1, what="the skip")


def test_committed_offsets_survive_a_restart(service, codec, topic, produce, make_runner) -> None:
    first = [make_message(codec, f"res-{i % 3}") for i in range(5)]
    for message in first:
        produce(topic, message.key, message.value, message.headers)
    calls: list[str] = []
    handler = recording_handler(service, calls)
    name = "it.consumer.restarted"
    runner = make_runner([topic], {"ReservationCreated": handler}, name=f"{name}.{topic}")
    wait_for(lambda: len(calls) == 5, what="the first five")
    runner.stop()
    assert not runner.running

    second = [make_message(codec, f"res-{i % 3}") for i in range(3)]
    for message in second:
        produce(topic, message.key, message.value, message.headers)
    again = make_runner([topic], {"ReservationCreated": handler}, name=f"{name}.{topic}")
    # Both rounds use the same keys, so every partition holding an old message also holds a
    # new one behind it: once the new ones are in, any redelivery would already be counted.
    wait_for(lambda: len(calls) == 8, what="the three new ones")
    assert sorted(calls) == sorted(m.envelope.event_id for m in first + second)  # each once
    assert outcome(again, topic, "duplicate") == 0  # nothing committed was redelivered
    assert service.effect_count() == 8


def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return reader.committed(tp)
    finally:
        reader.close(autocommit=False)


def _dlq_limit(bootstrap: str, dlq: str, max_message_bytes: str | None) -> None:
    """Make the DLQ topic reject every message (a tiny max.message.bytes), or undo that."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, dlq, {"max.message.bytes": max_message_bytes})
        if max_message_bytes is None:
            admin.reset_configs([resource])
        else:
            admin.alter_configs([resource])
    finally:
        admin.close()


def test_unwritable_dlq_blocks_the_partition_instead_of_losing_the_message(
    kafka_broker, service, codec, topic, produce, make_runner
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    dlq = f"{topic}.dlq"
    _dlq_limit(bootstrap, dlq, "16")
    calls: list[str] = []
    record_ok = recording_handler(service, calls)

    def handler(session, envelope, payload) -> None:
        if payload["nights"] == 3:
            raise PermanentError("never valid")
        record_ok(session, envelope, payload)

    poison = make_message(codec, "res-1", nights=3)
    good = make_message(codec, "res-1", nights=1)  # same partition, behind the poison
    sent = produce(topic, poison.key, poison.value, poison.headers)
    produce(topic, good.key, good.value, good.headers)
    tp = TopicPartition(topic, sent.partition)
    runner = make_runner([topic], {"ReservationCreated": handler})

    wait_for(lambda: runner.last_error and "cannot write" in runner.last_error, what="a DLQ failure")
    assert not runner.healthy
    assert calls == []  # the partition waits behind the poison message...
    committed = _committed(bootstrap, runner.name, tp)
    assert committed is None or committed <= sent.offset  # ...which is not committed

    _dlq_limit(bootstrap, dlq, None)  # the operator fixes the DLQ
    wait_for(lambda: calls == [good.envelope.event_id], what="the partition to move on")
    wait_for(lambda: runner.healthy, what="the runner to report healthy again")
    [dead] = read_topic(bootstrap, dlq, 1)
    assert dead.value == poison.value
    assert _committed(bootstrap, runner.name, tp) == sent.offset + 2


def _group_members(bootstrap: str, group: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return sum(len(g["members"]) for g in admin.describe_groups([group]).values())
    finally:
        admin.close()


def test_consumer_dropped_from_its_group_mid_message_rejoins_and_the_redelivery_is_a_duplicate(
    kafka_broker, service, codec, topic, produce, make_runner
) -> None:
    """Fault 8: the offset commit after a long stall fails (CommitFailed); nothing crashes or doubles."""
    bootstrap = kafka_broker.bootstrap_servers
    messages = [make_message(codec, "res-1") for _ in range(3)]  # one key: one partition, in order
    sent = [produce(topic, m.key, m.value, m.headers) for m in messages]
    tp = TopicPartition(topic, sent[0].partition)
    calls: list[str] = []
    record = recording_handler(service, calls)
    stalled, release = threading.Event(), threading.Event()

    def handler(session, envelope, payload) -> None:
        record(session, envelope, payload)
        if len(calls) == 1:
            stalled.set()
            release.wait(timeout=120)  # past max_poll_interval_ms: the client leaves the group

    # A short poll interval stands in for a consumer frozen past its session timeout: either way
    # the group moves on without it and its next offset commit is refused.
    config = {**FAST_CONSUMER, "max_poll_interval_ms": 6_000}
    runner = make_runner([topic], {"ReservationCreated": handler}, consumer_config=config)
    wait_for(stalled.is_set, what="the first message to stall its handler")
    wait_for(
        lambda: _group_members(bootstrap, runner.name) == 0,
        timeout=60,
        what="the stalled member to leave its group",
    )
    release.set()

    wait_for(
        lambda: _committed(bootstrap, runner.name, tp) == sent[-1].offset + 1,
        timeout=60,
        what="the partition committed to its end",
    )
    assert outcome(runner, topic, "applied") == 3
    # Only the stalled message comes back: the member that lost the partition dropped the rest
    # of its batch instead of working on (and failing to commit) messages it no longer owned.
    assert outcome(runner, topic, "duplicate") == 1
    assert runner.running, "the runner crashed instead of rejoining"
    assert calls == [m.envelope.event_id for m in messages]  # the handler never saw the redelivery
    assert service.effect_count() == 3
    for message in messages:
        assert service.processed_count(runner.name, message.envelope.event_id) == 1
