"""The envelope travels as Kafka headers; unusable headers are a dead letter, not a crash."""

from __future__ import annotations

import uuid

import pytest

from common.messaging import Envelope, UndecodableMessage


def _envelope(**changes) -> Envelope:
    values = {
        "event_id": str(uuid.uuid4()),
        "event_type": "UserRegistered",
        "schema_version": 1,
        "schema_fingerprint": "9ddce7c45ab071b9",
        "occurred_at": "2025-03-01T12:30:15.123+00:00",
        "producer": "auth",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "request_id": "req-1",
        "key": "u-1",
    }
    values.update(changes)
    return Envelope(**values)


def test_round_trip_through_headers() -> None:
    envelope = _envelope()
    headers = envelope.to_headers()
    assert all(isinstance(n, str) and isinstance(v, bytes) for n, v in headers)
    assert dict(headers) == {
        "event_id": envelope.event_id.encode(),
        "event_type": b"UserRegistered",
        "schema_version": b"1",
        "schema_fingerprint": b"9ddce7c45ab071b9",
        "occurred_at": b"2025-03-01T12:30:15.123+00:00",
        "producer": b"auth",
        "traceparent": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "request_id": b"req-1",
    }
    assert Envelope.from_headers(headers, b"u-1") == envelope


def test_optional_headers_are_left_out_when_absent() -> None:
    envelope = _envelope(traceparent=None, request_id=None, key=None)
    headers = envelope.to_headers()
    assert {name for name, _ in headers}.isdisjoint({"traceparent", "request_id"})
    assert Envelope.from_headers(headers) == envelope


def test_unknown_headers_are_ignored() -> None:
    envelope = _envelope()
    headers = [*envelope.to_headers(), ("dlq_consumer", b"x"), ("nothing", None)]
    assert Envelope.from_headers(headers, b"u-1") == envelope


@pytest.mark.parametrize(
    "name", ["event_id", "event_type", "schema_version", "schema_fingerprint", "occurred_at", "producer"]
)
def test_missing_required_header(name: str) -> None:
    headers = [(n, v) for n, v in _envelope().to_headers() if n != name]
    with pytest.raises(UndecodableMessage, match=name):
        Envelope.from_headers(headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("schema_version", b"one"),
        ("event_id", b"not-a-uuid"),
        ("occurred_at", b"yesterday"),
        ("occurred_at", b"2025-03-01T12:30:15"),  # no offset: ambiguous
        ("event_type", b"\xff\xfe"),
    ],
)
def test_garbled_header(name: str, value: bytes) -> None:
    headers = [(n, value if n == name else v) for n, v in _envelope().to_headers()]
    with pytest.raises(UndecodableMessage):
        Envelope.from_headers(headers)


def test_no_headers_at_all() -> None:
    with pytest.raises(UndecodableMessage):
        Envelope.from_headers(None)
    with pytest.raises(UndecodableMessage):
        Envelope.from_headers([])


def test_key_must_be_text() -> None:
    with pytest.raises(UndecodableMessage):
        Envelope.from_headers(_envelope().to_headers(), b"\xff\xfe")
