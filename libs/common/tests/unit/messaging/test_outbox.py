"""The outbox writes in the caller's transaction: commit both or neither."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from common.context import TraceContext, current_trace, request_id_var
from common.messaging import (
    TOPIC_FOR_EVENT,
    AvroCodec,
    Envelope,
    Outbox,
    SchemaViolation,
    UnknownEventType,
)
from common.tracing import extract, span


class Boom(Exception):
    pass


@pytest.fixture
def outbox(store, codec: AvroCodec) -> Outbox:
    _, tables = store
    return Outbox(tables, codec, producer_name="auth")


def _rows(store):
    db, tables = store
    with db.read() as session:
        return session.execute(select(tables.outbox).order_by(tables.outbox.c.id)).all()


def test_rolled_back_transaction_leaves_no_row_and_no_wake(store, outbox, payloads) -> None:
    db, _ = store
    woken = threading.Event()
    outbox.on_commit(woken.set)
    with pytest.raises(Boom), db.transaction() as session:
        outbox.add(session, "UserRegistered", "u-1", payloads["UserRegistered"])
        raise Boom
    assert _rows(store) == []
    assert not woken.is_set()


def test_committed_row_holds_encoded_payload_and_envelope_headers(store, outbox, codec, payloads) -> None:
    db, _ = store
    incoming = TraceContext.new()
    request_token = request_id_var.set("req-42")
    try:
        with span("request", context=extract({"traceparent": incoming.header()})):
            trace = current_trace()
            with db.transaction() as session:
                envelope = outbox.add(session, "UserRegistered", "u-1", payloads["UserRegistered"])
    finally:
        request_id_var.reset(request_token)
    assert trace is not None
    assert trace.trace_id == incoming.trace_id  # the request's span continues the caller's trace

    [row] = _rows(store)
    assert row.event_id == envelope.event_id
    uuid.UUID(row.event_id)
    assert (row.topic, row.key, row.event_type) == (
        TOPIC_FOR_EVENT["UserRegistered"],
        "u-1",
        "UserRegistered",
    )
    assert row.published_at is None
    assert row.attempts == 0
    assert codec.decode(row.payload, row.headers["schema_fingerprint"]) == (
        "UserRegistered",
        1,
        payloads["UserRegistered"],
    )
    assert row.headers["request_id"] == "req-42"
    # The row keeps the context it was written in: the request's trace, in the span of the
    # transaction that wrote it (a child of the request's span).
    written_in = TraceContext.parse(row.headers["traceparent"])
    assert written_in is not None
    assert written_in.trace_id == trace.trace_id
    assert written_in.span_id not in (trace.span_id, incoming.span_id)
    assert row.headers["producer"] == "auth"
    stored = Envelope.from_headers([(n, v.encode()) for n, v in row.headers.items()], b"u-1")
    assert stored == envelope


def test_without_a_trace_in_context_the_row_has_none(store, outbox, payloads) -> None:
    db, _ = store
    with db.transaction() as session:
        envelope = outbox.add(session, "UserRegistered", "u-1", payloads["UserRegistered"])
    assert envelope.traceparent is None  # the relay's produce span starts the trace
    assert envelope.request_id is None
    assert "request_id" not in _rows(store)[0].headers


def test_wakes_listeners_after_commit_only(store, outbox, payloads) -> None:
    db, _ = store
    calls: list[str] = []
    outbox.on_commit(lambda: calls.append("woken"))
    with db.transaction() as session:
        outbox.add(session, "UserRegistered", "u-1", payloads["UserRegistered"])
        outbox.add(session, "UserRegistered", "u-2", payloads["UserRegistered"])
        assert calls == []  # not before the commit
    assert calls == ["woken"]  # once per commit, not once per event
    with db.transaction() as session:
        session.execute(select(1))  # a commit without events wakes no one
    assert calls == ["woken"]


def test_a_session_rolled_back_then_committed_still_wakes(store, outbox, payloads) -> None:
    db, _ = store
    calls: list[str] = []
    outbox.on_commit(lambda: calls.append("woken"))
    with db._sessions() as session:
        with session.begin():
            outbox.add(session, "UserRegistered", "u-1", payloads["UserRegistered"])
            session.rollback()
        assert calls == []
        with session.begin():
            outbox.add(session, "UserRegistered", "u-2", payloads["UserRegistered"])
        assert calls == ["woken"]
    assert [row.key for row in _rows(store)] == ["u-2"]


def test_schema_violation_fails_the_domain_transaction(store, outbox, payloads) -> None:
    db, _ = store
    bad = {**payloads["UserRegistered"], "email": None}
    with pytest.raises(SchemaViolation, match="email"), db.transaction() as session:
        outbox.add(session, "UserRegistered", "u-1", payloads["UserRegistered"])
        outbox.add(session, "UserRegistered", "u-2", bad)
    assert _rows(store) == []


def test_explicit_event_id_and_occurred_at(store, outbox, payloads) -> None:
    db, tables = store
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.transaction() as session:
        envelope = outbox.add(
            session,
            "UserRegistered",
            "u-1",
            payloads["UserRegistered"],
            event_id="5b0d8b5e-9a5e-4c3c-9b7b-0c1f2d3e4f50",
            occurred_at=when,
        )
    assert envelope.event_id == "5b0d8b5e-9a5e-4c3c-9b7b-0c1f2d3e4f50"
    assert envelope.occurred_at == "2025-01-02T03:04:05.000+00:00"
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(tables.outbox)) == 1


def test_topics_can_be_overridden(store, codec, payloads) -> None:
    db, tables = store
    outbox = Outbox(tables, codec, "auth", topics={"UserRegistered": "test.users"})
    with db.transaction() as session:
        outbox.add(session, "UserRegistered", "u-1", payloads["UserRegistered"])
    assert _rows(store)[0].topic == "test.users"


def test_unknown_event_type_is_refused(store, codec, payloads) -> None:
    db, tables = store
    outbox = Outbox(tables, codec, "auth", topics={})
    with pytest.raises(UnknownEventType), db.transaction() as session:
        outbox.add(session, "UserRegistered", "u-1", payloads["UserRegistered"])
    with pytest.raises(UnknownEventType), db.transaction() as session:
        outbox.add(session, "NoSuchEvent", "u-1", {})
    assert _rows(store) == []
