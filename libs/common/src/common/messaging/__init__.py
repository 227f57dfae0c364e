"""Events between services: Avro codec, envelope, outbox + relay, idempotent consumers, DLQ.

Typical wiring in a service's composition root::

    codec = AvroCodec.from_contracts()
    tables = messaging_tables(Base.metadata)
    outbox = Outbox(tables, codec, producer_name="room")
    relay = OutboxRelay.for_kafka(db, tables, bootstrap, service="room")
    outbox.on_commit(relay.wake)
    relay.start()
    ...
    with db.transaction() as session:
        session.add(reservation)
        outbox.add(session, "ReservationCreated", key=reservation.id, payload={...})
"""

from typing import TYPE_CHECKING, Any

from common.messaging.codec import (
    AvroCodec,
    EventSchema,
    MessagingError,
    SchemaRegistry,
    SchemaViolation,
    UndecodableMessage,
    UnknownEventType,
    UnknownSchema,
    default_contracts_dir,
)
from common.messaging.consumer import ConsumerRunner, Handler, PermanentError
from common.messaging.envelope import Envelope, Headers
from common.messaging.outbox import Outbox
from common.messaging.producer import create_producer
from common.messaging.relay import OutboxRelay
from common.messaging.tables import MessagingTables, messaging_tables
from common.messaging.topics import (
    ALL_TOPICS,
    TOPIC_FOR_EVENT,
    dlq_topic,
    ensure_topics,
    topic_for,
)

if TYPE_CHECKING:
    from common.messaging.dlq import DeadLetter, list_dead_letters, redrive


def __getattr__(name: str) -> Any:
    # The DLQ tools load on first use, so `python -m common.messaging.dlq` doesn't import its
    # own module twice (once through this package, once as __main__).
    if name in {"DeadLetter", "list_dead_letters", "redrive"}:
        from common.messaging import dlq

        return getattr(dlq, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL_TOPICS",
    "TOPIC_FOR_EVENT",
    "AvroCodec",
    "ConsumerRunner",
    "DeadLetter",
    "Envelope",
    "EventSchema",
    "Handler",
    "Headers",
    "MessagingError",
    "MessagingTables",
    "Outbox",
    "OutboxRelay",
    "PermanentError",
    "SchemaRegistry",
    "SchemaViolation",
    "UndecodableMessage",
    "UnknownEventType",
    "UnknownSchema",
    "create_producer",
    "default_contracts_dir",
    "dlq_topic",
    "ensure_topics",
    "list_dead_letters",
    "messaging_tables",
    "redrive",
    "topic_for",
]
