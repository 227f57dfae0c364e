"""Fault switches at the messaging seams, against the real broker: what a crash in the window costs.

The crash is the real ``crash_point`` with the process exit swapped for one that ends only the
worker's thread (``SystemExit`` there stops the thread, not pytest), so the test can look at
the broker and the database the process would have left behind, then restart the worker.
"""

from __future__ import annotations

import uuid
from typing import NoReturn

import pytest
from prometheus_client import REGISTRY

from common.faults import FaultSpec, Switchboard
from common.messaging import AvroCodec, Envelope, Outbox, OutboxRelay

from .conftest import SERVICE, make_message, metric, read_topic, reservation, wait_for
from .test_consumer_kafka import outcome, recording_handler

pytestmark = [
    pytest.mark.kafka,
    # The worker's thread ends by SystemExit on purpose (the stand-in for the process exit).
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]

CRASH_ONCE = {"kind": "crash_after_send", "match": "*", "max_hits": 1}


class Exits:
    """Stands in for ``os._exit``: records the code and ends the calling thread."""

    def __init__(self) -> None:
        self.codes: list[int] = []

    def __call__(self, code: int) -> NoReturn:
        self.codes.append(code)
        raise SystemExit(code)


def _relay(kafka_broker, service, board: Switchboard) -> OutboxRelay:
    return OutboxRelay.for_kafka(
        service.db,
        service.tables,
        kafka_broker.bootstrap_servers,
        board.service,
        poll_interval=0.2,
        backoff_base=0.1,
        backoff_cap=0.5,
        faults=board,
    )


def _outbox(service, codec: AvroCodec, topic: str) -> Outbox:
    return Outbox(service.tables, codec, "room", topics={"ReservationCreated": topic})


def test_relay_crash_after_send_leaves_the_row_unmarked_and_a_restart_sends_it_again(
    kafka_broker, service, codec, topic
) -> None:
    exits = Exits()
    board = Switchboard(f"it-relay-{uuid.uuid4().hex[:6]}", exit=exits)
    board.set("crash", FaultSpec.model_validate({**CRASH_ONCE, "where": "relay"}))
    outbox = _outbox(service, codec, topic)
    with service.db.transaction() as session:
        event_id = outbox.add(session, "ReservationCreated", "res-1", reservation("res-1")).event_id

    relay = _relay(kafka_broker, service, board)
    relay.start()
    wait_for(lambda: exits.codes == [70] and not relay.running, what="the relay to crash after the ack")
    # The broker has the event (it acked), the outbox does not know: the window at-least-once covers.
    (record,) = read_topic(kafka_broker.bootstrap_servers, topic, 1)
    assert Envelope.from_headers(record.headers, record.key).event_id == event_id
    assert relay.backlog() == 1

    restarted = _relay(kafka_broker, service, board)  # the switch is spent (max_hits=1)
    restarted.start()
    try:
        wait_for(lambda: restarted.backlog() == 0, what="the restarted relay to mark the row")
    finally:
        restarted.stop()
    records = read_topic(kafka_broker.bootstrap_servers, topic, 2)
    assert [Envelope.from_headers(r.headers, r.key).event_id for r in records] == [event_id, event_id]
    assert exits.codes == [70]  # once: nothing crashed on the second send


def test_relay_pause_holds_the_rows_until_the_switch_is_deleted(kafka_broker, service, codec, topic) -> None:
    board = Switchboard(f"it-pause-{uuid.uuid4().hex[:6]}")
    board.set("hold", FaultSpec.model_validate({"kind": "pause", "where": "relay", "match": "*"}))
    outbox = _outbox(service, codec, topic)
    relay = _relay(kafka_broker, service, board)
    outbox.on_commit(relay.wake)
    relay.start()
    try:
        labels = {"service": board.service, "name": "hold", "kind": "pause"}
        wait_for(lambda: REGISTRY.get_sample_value("faults_injected_total", labels) == 1, what="the pause")
        with service.db.transaction() as session:
            outbox.add(session, "ReservationCreated", "res-1", reservation("res-1"))
        assert relay.backlog() == 1  # the relay is inside the pause: it claims nothing
        board.delete("hold")
        wait_for(lambda: relay.backlog() == 0, what="the relay to publish after the pause")
    finally:
        relay.stop()
    assert len(read_topic(kafka_broker.bootstrap_servers, topic, 1)) == 1


def test_consumer_crash_after_commit_redelivers_and_dedup_absorbs_it(
    service, codec, topic, produce, make_runner
) -> None:
    exits = Exits()
    board = Switchboard(SERVICE, exit=exits)
    group = f"it.crash.{uuid.uuid4().hex[:8]}"
    board.set("crash", FaultSpec.model_validate({**CRASH_ONCE, "where": "consumer", "match": group}))
    message = make_message(codec, "res-1")
    produce(topic, message.key, message.value, message.headers)
    calls: list[str] = []
    handlers = {"ReservationCreated": recording_handler(service, calls)}

    crashed = make_runner([topic], handlers, name=group, faults=board)
    wait_for(lambda: exits.codes == [70] and not crashed.running, what="the consumer to crash")
    assert service.effect_count(message.envelope.event_id) == 1  # the DB commit happened
    assert outcome(crashed, topic, "applied") == 0  # ...the offset commit did not

    again = make_runner([topic], handlers, name=group, faults=board)
    wait_for(lambda: outcome(again, topic, "duplicate") == 1, what="the redelivery to be skipped")
    assert service.effect_count(message.envelope.event_id) == 1  # applied once, not twice
    assert calls == [message.envelope.event_id]
    assert metric("messages_duplicate_total", consumer=group, topic=topic) == 1
