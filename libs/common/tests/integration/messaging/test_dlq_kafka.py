"""Dead letters belong to the group that failed: listed truly, redriven to that group, once."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import pytest

from common.messaging import create_producer, list_dead_letters, redrive
from common.messaging.consumer import (
    H_DLQ_CONSUMER,
    H_DLQ_ERROR_HISTORY,
    H_DLQ_ORIGIN_OFFSET,
    H_DLQ_ORIGIN_PARTITION,
    H_DLQ_ORIGIN_TOPIC,
    H_REDRIVE_GROUP,
    ConsumerRunner,
)
from common.messaging.dlq import main, read_dead_letters

from .conftest import make_message, metric, read_topic, wait_for

pytestmark = pytest.mark.kafka


def test_list_then_redrive_applies_the_event_once(
    kafka_broker, service, topic, mail_outage, make_runner, capsys
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    dlq = f"{topic}.dlq"
    poison, other, sent, applied = mail_outage.poison, mail_outage.fine, mail_outage.sent, mail_outage.applied
    runner = make_runner([topic], {"ReservationCreated": mail_outage.handler}, max_attempts=2)
    wait_for(lambda: len(list_dead_letters(bootstrap, dlq)) == 1, what="the dead letter")

    [letter] = list_dead_letters(bootstrap, dlq)
    assert letter.event_id == poison.envelope.event_id
    assert letter.envelope == poison.envelope
    assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == (
        topic,
        sent.partition,
        sent.offset,
    )
    assert letter.consumer == runner.name
    assert letter.redriven is None
    assert [e["attempt"] for e in letter.error_history] == [1, 2]
    assert letter.error_history[-1]["error"] == "ConnectionError: mail server down"
    assert letter.original_headers == poison.headers

    assert main(["list", dlq, "--bootstrap", bootstrap]) == 0
    printed = capsys.readouterr().out
    assert f"{dlq}: 1 dead letter(s), 0 redriven, 1 not redriven" in printed
    assert poison.envelope.event_id in printed
    assert f"group {runner.name}" in printed
    assert "ConnectionError: mail server down" in printed

    mail_outage.mail_server_up = True  # the cause is fixed
    wait_for(lambda: other.envelope.event_id in applied, what="the other event")
    assert redrive(bootstrap, dlq, event_ids={"some-other-id"}).republished == []
    assert main(["redrive", dlq, "--bootstrap", bootstrap]) == 0
    assert "redrove 1 letter(s)" in capsys.readouterr().out
    wait_for(lambda: poison.envelope.event_id in applied, what="the re-driven event")

    # A second redrive sends nothing: the letter is marked as redriven, durably, in the DLQ.
    again = redrive(bootstrap, dlq, event_ids={poison.envelope.event_id})
    assert (again.republished, again.already_redriven) == ([], 1)
    [letter] = list_dead_letters(bootstrap, dlq)
    assert letter.redriven is not None
    assert letter.redriven.group == runner.name
    assert main(["list", dlq, "--bootstrap", bootstrap]) == 0
    assert f"redriven to {runner.name}" in capsys.readouterr().out
    assert applied.count(poison.envelope.event_id) == 1
    assert service.effect_count(poison.envelope.event_id) == 1


def test_one_poison_message_three_groups_each_letter_goes_back_to_its_own_group_once(
    kafka_broker, service, codec, topic, produce, make_runner
) -> None:
    """Three groups → three letters; a redrive reaches only the letter's group, once.

    Failing again after a redrive makes exactly one new letter per group (3, not 12); once the
    cause is fixed, the next redrive is applied once per group and makes no new letter.
    """
    bootstrap = kafka_broker.bootstrap_servers
    dlq = f"{topic}.dlq"
    poison = make_message(codec, "res-poison")
    produce(topic, poison.key, poison.value, poison.headers)
    broken = True

    def handler_for(group: str) -> Callable[..., None]:
        def handler(session, envelope, payload) -> None:
            if broken:
                raise ValueError("downstream rejects it")
            session.execute(service.effects.insert().values(event_id=envelope.event_id, key=group))

        return handler

    groups = [f"it.dlq.{topic.split('.')[1]}.{name}" for name in ("inventory", "member", "mail")]
    runners: list[ConsumerRunner] = [
        make_runner([topic], {"ReservationCreated": handler_for(g)}, name=g, max_attempts=1) for g in groups
    ]

    def skipped(group: str) -> float:
        return metric("messages_consumed_total", consumer=group, topic=topic, outcome="skipped")

    wait_for(lambda: len(list_dead_letters(bootstrap, dlq)) == 3, what="one letter per group")
    letters = list_dead_letters(bootstrap, dlq)
    assert sorted(letter.consumer or "" for letter in letters) == sorted(groups)

    # Still broken: each group gets its own letter back, fails once more, letters it once more.
    first = redrive(bootstrap, dlq)
    assert sorted(letter.consumer or "" for letter in first.republished) == sorted(groups)
    copies = read_topic(bootstrap, topic, 4)[1:]  # the poison message, then its three redrives
    assert sorted(dict(c.headers)[H_REDRIVE_GROUP].decode() for c in copies) == sorted(groups)
    # Every group has read all three copies (skipping the two for the others) before we count.
    wait_for(lambda: all(skipped(g) == 2 for g in groups), what="each group skipping the others' copies")
    found = read_dead_letters(bootstrap, dlq)
    assert found.total == 6  # 3 + one new letter per group; before the fix: 3 + 3 * 3 = 12
    new = found.pending
    assert sorted(letter.consumer or "" for letter in new) == sorted(groups)
    assert all(H_REDRIVE_GROUP not in dict(letter.headers) for letter in new)

    broken = False  # the cause is fixed
    second = redrive(bootstrap, dlq)
    assert sorted(letter.id for letter in second.republished) == sorted(letter.id for letter in new)
    assert second.already_redriven == 3
    wait_for(lambda: service.effect_count(poison.envelope.event_id) == 3, what="one effect per group")
    wait_for(lambda: all(skipped(g) == 4 for g in groups), what="each group skipping the others' copies")
    for runner in runners:
        assert service.processed_count(runner.name, poison.envelope.event_id) == 1
        assert metric("messages_consumed_total", consumer=runner.name, topic=topic, outcome="applied") == 1
    final = read_dead_letters(bootstrap, dlq)
    assert (final.total, final.pending) == (6, [])  # no new letter
    assert redrive(bootstrap, dlq).republished == []  # and nothing left to redrive


def _letter_headers(topic: str, group: str, offset: int) -> list[tuple[str, bytes]]:
    history = [{"attempt": 1, "error": "ValueError: bad", "at": "2030-01-01T00:00:00.000+00:00"}]
    return [
        (H_DLQ_ERROR_HISTORY, json.dumps(history).encode()),
        (H_DLQ_ORIGIN_TOPIC, topic.encode()),
        (H_DLQ_ORIGIN_PARTITION, b"0"),
        (H_DLQ_ORIGIN_OFFSET, str(offset).encode()),
        (H_DLQ_CONSUMER, group.encode()),
    ]


def test_list_shows_the_true_total_of_hundreds_of_letters_and_reads_only_to_the_end(
    kafka_broker, topic, capsys
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    dlq = f"{topic}.dlq"
    producer = create_producer(bootstrap, "it-dlq-filler")
    try:
        for i in range(400):
            producer.send(
                dlq, key=f"k-{i}".encode(), value=b"garbage", headers=_letter_headers(topic, "g", i)
            )
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)

    began = time.monotonic()
    assert main(["list", dlq, "--bootstrap", bootstrap, "--limit", "5"]) == 0
    took = time.monotonic() - began
    out = capsys.readouterr()
    assert f"{dlq}: 400 dead letter(s), 0 redriven, 400 not redriven" in out.out
    assert "showing the oldest 5 of 400" in out.out
    assert out.out.count("group g · from") == 5
    assert f"reading 400 record(s) of {dlq}" in out.err  # progress, on stderr
    # Reading up to the end offsets, not until the topic has been idle for a while.
    assert took < 5, f"dlq list took {took:.1f} s"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_without_bootstrap_it_reads_the_run_folders_stack(
    kafka_broker, topic, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    state = {"kafka_port": kafka_broker.port, "services": {}}
    (tmp_path / "stack.json").write_text(json.dumps(state), encoding="utf-8")
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{_closed_port()}")  # the fallback
    assert main(["list", f"{topic}.dlq"]) == 0
    out = capsys.readouterr()
    assert f"Kafka at {kafka_broker.bootstrap_servers} (from {tmp_path / 'stack.json'})" in out.err
    assert f"{topic}.dlq: 0 dead letter(s)" in out.out

    (tmp_path / "stack.json").unlink()  # no stack running: the environment decides
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker.bootstrap_servers)
    assert main(["list", f"{topic}.dlq"]) == 0
    assert "(from $KAFKA_BOOTSTRAP_SERVERS)" in capsys.readouterr().err


def test_a_missing_dlq_is_a_clear_error(kafka_broker, topic, capsys) -> None:
    assert list_dead_letters(kafka_broker.bootstrap_servers, "no.such.topic.dlq") == []
    assert main(["list", "no.such.topic.dlq", "--bootstrap", kafka_broker.bootstrap_servers]) == 1
    err = capsys.readouterr().err
    assert "error: topic no.such.topic.dlq does not exist; dead-letter topics here:" in err
    assert f"{topic}.dlq" in err
