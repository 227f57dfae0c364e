"""The envelope: what every event carries besides its payload, as Kafka headers.

The payload is pure domain data (Avro). Identity, schema, time, origin and tracing live in
headers so a consumer can dedupe, pick the writer schema and continue the trace before (or
without) decoding the value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from common.messaging.codec import UndecodableMessage

Headers = list[tuple[str, bytes]]

H_EVENT_ID = "event_id"
H_EVENT_TYPE = "event_type"
H_SCHEMA_VERSION = "schema_version"
H_SCHEMA_FINGERPRINT = "schema_fingerprint"
H_OCCURRED_AT = "occurred_at"
H_PRODUCER = "producer"
H_TRACEPARENT = "traceparent"
H_REQUEST_ID = "request_id"

_REQUIRED = (H_EVENT_ID, H_EVENT_TYPE, H_SCHEMA_VERSION, H_SCHEMA_FINGERPRINT, H_OCCURRED_AT, H_PRODUCER)


def utc_now_iso() -> str:
    """Now, as UTC ISO 8601 with milliseconds (``2024-05-01T12:00:00.123+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Envelope:
    """Metadata of one event. ``key`` is the Kafka message key (the aggregate id), not a header."""

    event_id: str
    event_type: str
    schema_version: int
    schema_fingerprint: str
    occurred_at: str
    producer: str
    traceparent: str | None = None
    request_id: str | None = None
    key: str | None = None

    def to_headers(self) -> Headers:
        """Kafka headers (UTF-8 values); absent optional values are left out."""
        pairs = [
            (H_EVENT_ID, self.event_id),
            (H_EVENT_TYPE, self.event_type),
            (H_SCHEMA_VERSION, str(self.schema_version)),
            (H_SCHEMA_FINGERPRINT, self.schema_fingerprint),
            (H_OCCURRED_AT, self.occurred_at),
            (H_PRODUCER, self.producer),
            (H_TRACEPARENT, self.traceparent),
            (H_REQUEST_ID, self.request_id),
        ]
        return [(name, value.encode()) for name, value in pairs if value is not None]

    @classmethod
    def from_headers(
        cls, headers: Iterable[tuple[str, bytes | None]] | None, key: bytes | None = None
    ) -> Envelope:
        """Parse headers (and the message key); raise ``UndecodableMessage`` if they're unusable."""
        values: dict[str, str] = {}
        try:
            for name, raw in headers or ():
                if raw is not None:
                    values[name] = raw.decode()
            key_text = key.decode() if key is not None else None
        except (UnicodeDecodeError, AttributeError, ValueError, TypeError) as exc:
            raise UndecodableMessage(f"headers or key are not UTF-8 text: {exc}") from exc
        missing = [name for name in _REQUIRED if not values.get(name)]
        if missing:
            raise UndecodableMessage(f"missing envelope headers: {', '.join(missing)}")
        try:
            UUID(values[H_EVENT_ID])
            version = int(values[H_SCHEMA_VERSION])
            occurred = datetime.fromisoformat(values[H_OCCURRED_AT])
        except ValueError as exc:
            raise UndecodableMessage(f"garbled envelope header: {exc}") from exc
        if occurred.tzinfo is None:
            raise UndecodableMessage("occurred_at must carry a UTC offset")
        return cls(
            event_id=values[H_EVENT_ID],
            event_type=values[H_EVENT_TYPE],
            schema_version=version,
            schema_fingerprint=values[H_SCHEMA_FINGERPRINT],
            occurred_at=values[H_OCCURRED_AT],
            producer=values[H_PRODUCER],
            traceparent=values.get(H_TRACEPARENT),
            request_id=values.get(H_REQUEST_ID),
            key=key_text,
        )
