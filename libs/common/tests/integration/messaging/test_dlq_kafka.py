"""Dead letters can be listed and re-driven once the cause is fixed."""

from __future__ import annotations

import pytest

from common.messaging import list_dead_letters, redrive
from common.messaging.dlq import main

from .conftest import make_message, metric, wait_for

pytestmark = pytest.mark.kafka


def test_list_then_redrive_applies_the_event_once(
    kafka_broker, service, codec, topic, produce, make_runner, capsys
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    dlq = f"{topic}.dlq"
    poison = make_message(codec, "res-1")
    other = make_message(codec, "res-2")
    sent = produce(topic, poison.key, poison.value, poison.headers)
    produce(topic, other.key, other.value, other.headers)
    mail_server_up = False
    applied: list[str] = []

    def handler(session, envelope, payload) -> None:
        if not mail_server_up and envelope.event_id == poison.envelope.event_id:
            raise ConnectionError("mail server down")
        session.execute(service.effects.insert().values(event_id=envelope.event_id, key=envelope.key))
        applied.append(envelope.event_id)

    runner = make_runner([topic], {"ReservationCreated": handler}, max_attempts=2)
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
    assert [e["attempt"] for e in letter.error_history] == [1, 2]
    assert letter.error_history[-1]["error"] == "ConnectionError: mail server down"
    assert letter.original_headers == poison.headers

    assert main(["list", dlq, "--bootstrap", bootstrap]) == 0
    printed = capsys.readouterr().out
    assert f"{dlq}: 1 dead letter(s)" in printed
    assert poison.envelope.event_id in printed
    assert "ConnectionError: mail server down" in printed

    mail_server_up = True  # the cause is fixed
    wait_for(lambda: other.envelope.event_id in applied, what="the other event")
    assert redrive(bootstrap, dlq, event_ids={"some-other-id"}) == 0
    assert main(["redrive", dlq, "--bootstrap", bootstrap]) == 0
    assert "redrove 1 message(s)" in capsys.readouterr().out
    wait_for(lambda: poison.envelope.event_id in applied, what="the re-driven event")

    # Redriving again is harmless: the consumer's dedup table already has the event.
    assert redrive(bootstrap, dlq, event_ids={poison.envelope.event_id}) == 1
    labels = {"consumer": runner.name, "topic": topic, "outcome": "duplicate"}
    wait_for(lambda: metric("messages_consumed_total", **labels) == 1, what="the duplicate")
    assert applied.count(poison.envelope.event_id) == 1
    assert service.effect_count(poison.envelope.event_id) == 1


def test_listing_a_missing_dlq_is_empty(kafka_broker) -> None:
    assert list_dead_letters(kafka_broker.bootstrap_servers, "no.such.topic.dlq") == []
