"""The consumer metrics the SLO alerts read: DLQ size per group and processing time."""

from __future__ import annotations

import pytest

from common.messaging import redrive

from .conftest import metric, wait_for

pytestmark = pytest.mark.kafka


def dlq_size(runner) -> float:
    return metric("dead_letter_queue_size", consumer=runner.name)


def processed(runner, topic: str) -> float:
    return metric("message_processing_seconds_count", consumer=runner.name, topic=topic)


def test_dlq_size_counts_this_groups_letters_until_redriven_and_is_read_back_at_start(
    kafka_broker, topic, mail_outage, make_runner
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    poison, fine, applied, handler = (
        mail_outage.poison,
        mail_outage.fine,
        mail_outage.applied,
        mail_outage.handler,
    )
    runner = make_runner([topic], {"ReservationCreated": handler}, max_attempts=2)
    wait_for(lambda: dlq_size(runner) == 1, what="the letter to be counted")
    wait_for(lambda: fine.envelope.event_id in applied, what="the fine event")
    wait_for(lambda: processed(runner, topic) == 2, what="both processing times observed")
    assert metric("message_processing_seconds_sum", consumer=runner.name, topic=topic) > 0

    # Another member of the same group starting later reads the letter back from the DLQ topic.
    runner.stop()
    second = make_runner([topic], {"ReservationCreated": handler}, name=runner.name, max_attempts=2)
    assert dlq_size(second) == 0  # __init__ resets it: what follows comes from the topic
    wait_for(lambda: dlq_size(second) == 1, timeout=60, what="the letter read back at start")

    mail_outage.mail_server_up = True
    assert len(redrive(bootstrap, f"{topic}.dlq").republished) == 1
    wait_for(lambda: poison.envelope.event_id in applied, timeout=60, what="the redriven event")
    assert dlq_size(second) == 0
