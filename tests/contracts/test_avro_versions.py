"""ReservationCreated v1 and v2 on one topic: old and new consumers both read both versions.

room writes v2 (it adds the optional ``room_name``); v1 messages are still in the topic (retention)
and may come back from the DLQ. Every message goes the way the platform sends it: encoded by
``AvroCodec`` with the writer's fingerprint in the envelope headers, read back by parsing those
headers and decoding by fingerprint, then handed to the consumers' real handler code.

* new consumer: the codec of today's contracts (reads as v2, the latest);
* old consumer: handlers written for v1, their codec pinned to read v1 (``reader_versions``).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from common.messaging import AvroCodec, Envelope, UnknownEventType, UnknownSchema, default_contracts_dir
from common.messaging.envelope import utc_now_iso
from inventory_service.consumers import reservation_handlers
from member_service.domain import history
from notification_service.domain.notifications import Contact, reservation_confirmed
from room_service.domain import events
from room_service.domain.model import Reservation, Room, Stay

EVENT = "ReservationCreated"
NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
ROOM = Room("r101", "Garden Single", "A quiet single room.", 1, 80)
RESERVATION = Reservation.confirm("res-1", "m-1", "r101", Stay(date(2030, 6, 1), date(2030, 6, 4)), now=NOW)


@dataclass(frozen=True)
class Message:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def publish(codec: AvroCodec, payload: dict[str, Any], version: int | None = None) -> Message:
    """As room's outbox does it (``version=None``: the latest, what room writes today)."""
    value, fingerprint, written = codec.encode(EVENT, payload, version)
    envelope = Envelope(
        event_id=str(uuid.uuid4()),
        event_type=EVENT,
        schema_version=written,
        schema_fingerprint=fingerprint,
        occurred_at=utc_now_iso(),
        producer="room",
        key=payload["reservation_id"],
    )
    return Message(payload["reservation_id"].encode(), value, envelope.to_headers())


def consume(codec: AvroCodec, message: Message) -> tuple[Envelope, int, dict[str, Any]]:
    """As a ConsumerRunner does it: envelope from the headers, writer schema by its fingerprint."""
    envelope = Envelope.from_headers(message.headers, message.key)
    event_type, version, payload = codec.decode(message.value, envelope.schema_fingerprint)
    assert event_type == envelope.event_type == EVENT
    assert version == envelope.schema_version
    return envelope, version, payload


CONTRACTS = AvroCodec.from_contracts()
NEW_CONSUMER = CONTRACTS
OLD_CONSUMER = AvroCodec.from_contracts(reader_versions={EVENT: 1})


def v2_from_room() -> Message:
    """What room publishes today: v2, with the room's name."""
    return publish(CONTRACTS, events.reservation_created(RESERVATION, ROOM))


def v1_from_old_room() -> Message:
    """What room published before v2 (still in the topic, or re-driven from the DLQ)."""
    payload = {k: v for k, v in events.reservation_created(RESERVATION, ROOM).items() if k != "room_name"}
    return publish(CONTRACTS, payload, version=1)


def test_room_writes_v2_with_the_room_name() -> None:
    headers = dict(v2_from_room().headers)
    assert headers["schema_version"] == b"2"
    assert headers["schema_fingerprint"].decode() == CONTRACTS.registry.get(EVENT, 2).fingerprint
    assert CONTRACTS.registry.get(EVENT).version == 2  # the latest: what the outbox writes


def test_new_consumer_reads_v2() -> None:
    _, version, payload = consume(NEW_CONSUMER, v2_from_room())
    assert version == 2
    assert payload["room_name"] == "Garden Single"


def test_new_consumer_reads_v1_with_the_default() -> None:  # BACKWARD
    _, version, payload = consume(NEW_CONSUMER, v1_from_old_room())
    assert version == 1
    assert payload["room_name"] is None
    assert payload["nights"] == 3


def test_old_consumer_reads_v2_without_the_new_field() -> None:  # FORWARD
    _, version, payload = consume(OLD_CONSUMER, v2_from_room())
    assert version == 2  # written as v2 ...
    assert set(payload) == CONTRACTS.registry.get(EVENT, 1).field_names  # ... read as v1
    assert "room_name" not in payload


def test_old_consumer_reads_v1() -> None:
    _, version, payload = consume(OLD_CONSUMER, v1_from_old_room())
    assert version == 1
    assert set(payload) == CONTRACTS.registry.get(EVENT, 1).field_names


MESSAGES = {"v1": v1_from_old_room, "v2": v2_from_room}
CONSUMERS = {"old": OLD_CONSUMER, "new": NEW_CONSUMER}


@pytest.mark.parametrize("written", sorted(MESSAGES))
@pytest.mark.parametrize("reader", sorted(CONSUMERS))
def test_every_consumer_handles_every_version(written: str, reader: str) -> None:
    """The consumers' real handler code gets the same answers from any version of the event."""
    envelope, _, payload = consume(CONSUMERS[reader], MESSAGES[written]())

    # inventory confirms the hold of these nights
    confirmed: list[tuple[str, Any]] = []

    class Inventory:
        def confirm(self, _session: object, reservation_id: str, stay: Any) -> None:
            confirmed.append((reservation_id, stay))

    reservation_handlers(Inventory())[EVENT](None, envelope, payload)  # type: ignore[arg-type]
    [(reservation_id, stay)] = confirmed
    assert (reservation_id, stay.room_id, stay.check_in, stay.check_out) == (
        "res-1",
        "r101",
        date(2030, 6, 1),
        date(2030, 6, 4),
    )

    # member appends this history entry
    entry = history.from_reservation_created(envelope.event_id, payload)
    assert (entry.member_id, entry.ref_id, entry.at) == ("m-1", "res-1", NOW)
    assert entry.details["nights"] == 3

    # notification mails this confirmation
    mail = reservation_confirmed(Contact("m-1", "ada@example.org", "Ada", 1), payload)
    assert mail.subject == "Reservation confirmed: room r101, 2030-06-01 to 2030-06-04"
    assert "(3 nights)" in mail.body


def test_a_consumer_without_the_v2_file_dead_letters_v2_until_it_gets_it(tmp_path: Path) -> None:
    """Why the new .avsc reaches every consumer before a producer writes it (docs/contracts.md).

    The reader needs the *writer's* schema to decode: a consumer deployed with only v1 can't
    resolve v2's fingerprint (UnknownSchema: the message goes to the DLQ, to be re-driven once the
    consumer has the file). With the file, even a reader pinned to v1 reads it (above).
    """
    for name in (f"{EVENT}.v1.avsc", "ReservationCancelled.v1.avsc"):
        shutil.copy(default_contracts_dir() / name, tmp_path / name)
    only_v1 = AvroCodec.from_contracts(tmp_path)
    assert consume(only_v1, v1_from_old_room())[1] == 1
    with pytest.raises(UnknownSchema):
        consume(only_v1, v2_from_room())


def test_a_reader_pin_must_name_a_known_version() -> None:
    with pytest.raises(UnknownEventType):
        AvroCodec.from_contracts(reader_versions={EVENT: 9})
