"""The Avro codec: contracts are the only way in and out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from common.messaging import (
    AvroCodec,
    SchemaRegistry,
    SchemaViolation,
    UndecodableMessage,
    UnknownEventType,
    UnknownSchema,
    default_contracts_dir,
)

EVENT_TYPES = [
    "LicenseActivated",
    "MemberUpdated",
    "ReservationCancelled",
    "ReservationCreated",
    "UserRegistered",
]


def test_default_contracts_dir_is_the_repos() -> None:
    folder = default_contracts_dir()
    assert folder.parts[-2:] == ("contracts", "events")
    assert (folder / "UserRegistered.v1.avsc").is_file()


def test_contracts_dir_can_be_set_by_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVENT_CONTRACTS_DIR", str(tmp_path))
    assert default_contracts_dir() == tmp_path


def test_every_event_has_a_documented_v1_schema(codec: AvroCodec) -> None:
    assert codec.registry.event_types == EVENT_TYPES
    for event_type in EVENT_TYPES:
        raw = json.loads((default_contracts_dir() / f"{event_type}.v1.avsc").read_text())
        assert raw["namespace"] == "reservations.events"
        assert raw["doc"]
        assert all(field.get("doc") for field in raw["fields"]), event_type


def test_license_activated_carries_no_license_key(codec: AvroCodec) -> None:
    assert "license_key" not in codec.registry.get("LicenseActivated").field_names


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_round_trip(codec: AvroCodec, payloads, event_type: str) -> None:
    data, fp, version = codec.encode(event_type, payloads[event_type])
    assert isinstance(data, bytes)
    assert version == codec.registry.get(event_type).version  # the latest (ReservationCreated: v2)
    omitted = codec.registry.get(event_type).field_names - payloads[event_type].keys()  # optional (null)
    assert codec.decode(data, fp) == (event_type, version, {**payloads[event_type], **dict.fromkeys(omitted)})


def test_optional_field_may_be_left_out(codec: AvroCodec, payloads) -> None:
    payload = payloads["UserRegistered"]
    del payload["display_name"]
    data, fp, _ = codec.encode("UserRegistered", payload)
    assert codec.decode(data, fp)[2]["display_name"] is None


def test_fingerprint_is_crc64_of_canonical_form_and_stable(codec: AvroCodec) -> None:
    again = SchemaRegistry.load(default_contracts_dir())
    for event_type in EVENT_TYPES:
        schema = codec.registry.get(event_type)
        assert schema.fingerprint == again.get(event_type).fingerprint
        assert schema.fingerprint == fingerprint(to_parsing_canonical_form(schema.parsed), "CRC-64-AVRO")
        assert len(schema.fingerprint) == 16
        int(schema.fingerprint, 16)


# Published schemas are immutable: consumers hold these fingerprints. Change = a new version file.
PUBLISHED_V1 = {
    "LicenseActivated": "0047112eaf0363bc",
    "MemberUpdated": "9a8c83bcbef8f9f1",
    "ReservationCancelled": "0cc205c4249d93d9",
    "ReservationCreated": "3099e50c4b5480f3",
    "UserRegistered": "9ddce7c45ab071b9",
}


def test_published_v1_schemas_are_unchanged(codec: AvroCodec) -> None:
    assert {t: codec.registry.get(t, 1).fingerprint for t in EVENT_TYPES} == PUBLISHED_V1


def test_docs_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    # The parsing canonical form drops docs: fixing a typo in a doc is not a new schema.
    source = default_contracts_dir() / "UserRegistered.v1.avsc"
    raw = json.loads(source.read_text())
    raw["doc"] = "reworded"
    (tmp_path / "UserRegistered.v1.avsc").write_text(json.dumps(raw))
    original = SchemaRegistry.load(default_contracts_dir()).get("UserRegistered")
    assert SchemaRegistry.load(tmp_path).get("UserRegistered").fingerprint == original.fingerprint


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": 42}, "email"),
        ({"registered_at": "yesterday"}, "registered_at"),
        ({"display_name": 3}, "display_name"),
        ({"unexpected": "x"}, "unexpected"),
    ],
)
def test_payload_that_violates_the_schema_names_the_field(codec: AvroCodec, payloads, change, field) -> None:
    payload = {**payloads["UserRegistered"], **change}
    with pytest.raises(SchemaViolation) as caught:
        codec.encode("UserRegistered", payload)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_missing_required_field_is_a_violation(codec: AvroCodec, payloads) -> None:
    payload = payloads["MemberUpdated"]
    del payload["version"]
    with pytest.raises(SchemaViolation) as caught:
        codec.encode("MemberUpdated", payload)
    assert caught.value.field == "version"
    assert caught.value.event_type == "MemberUpdated"


def test_unknown_event_type_cannot_be_encoded(codec: AvroCodec) -> None:
    with pytest.raises(UnknownEventType):
        codec.encode("NoSuchEvent", {})
    with pytest.raises(UnknownEventType):
        codec.encode("UserRegistered", {}, version=9)


def test_unknown_fingerprint(codec: AvroCodec, payloads) -> None:
    data, _, _ = codec.encode("UserRegistered", payloads["UserRegistered"])
    with pytest.raises(UnknownSchema):
        codec.decode(data, "0123456789abcdef")


@pytest.mark.parametrize("garbage", [b"", b"\xff" * 12, b"\x06\xff\xfe\xfd rest"])
def test_garbage_is_undecodable(codec: AvroCodec, garbage: bytes) -> None:
    fp = codec.registry.get("UserRegistered").fingerprint
    with pytest.raises(UndecodableMessage):
        codec.decode(garbage, fp)


def test_valid_record_followed_by_junk_is_undecodable(codec: AvroCodec, payloads) -> None:
    data, fp, _ = codec.encode("UserRegistered", payloads["UserRegistered"])
    with pytest.raises(UndecodableMessage, match="trailing"):
        codec.decode(data + b"\x00junk", fp)


def _write(folder: Path, name: str, fields: list[dict]) -> None:
    schema = {"type": "record", "name": name.split(".")[0], "namespace": "t", "fields": fields}
    (folder / f"{name}.avsc").write_text(json.dumps(schema))


def test_old_writer_is_read_with_the_latest_schema(tmp_path: Path) -> None:
    """Schema resolution: a v1 message read by a codec whose latest schema is v2."""
    v1 = [{"name": "id", "type": "string"}]
    v2 = [*v1, {"name": "colour", "type": "string", "default": "blue"}]
    _write(tmp_path, "Thing.v1", v1)
    _write(tmp_path, "Thing.v2", v2)
    codec = AvroCodec.from_contracts(tmp_path)
    data, fp, version = codec.encode("Thing", {"id": "x"}, version=1)
    assert version == 1
    assert codec.decode(data, fp) == ("Thing", 1, {"id": "x", "colour": "blue"})
    data2, fp2, version2 = codec.encode("Thing", {"id": "y", "colour": "red"})
    assert version2 == 2
    assert fp2 != fp
    assert codec.decode(data2, fp2) == ("Thing", 2, {"id": "y", "colour": "red"})


def test_badly_named_schema_files_are_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "Other.v1", [{"name": "id", "type": "string"}])
    (tmp_path / "Other.v1.avsc").rename(tmp_path / "Thing.v1.avsc")
    with pytest.raises(ValueError, match="record named 'Thing'"):
        SchemaRegistry.load(tmp_path)
    (tmp_path / "Thing.v1.avsc").rename(tmp_path / "thing-v1.avsc")
    with pytest.raises(ValueError, match=r"<Event>\.v<N>\.avsc"):
        SchemaRegistry.load(tmp_path)
