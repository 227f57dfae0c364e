"""Avro codec: events are encoded with the schemas in ``contracts/events``, nothing else.

Each message carries only the *writer* schema's fingerprint (CRC-64-AVRO of the schema's
parsing canonical form) in its headers. The reader looks the writer schema up by fingerprint
and resolves it against the *latest* version it knows, so a consumer on v2 still reads v1
messages (and the other way round, within Avro's compatibility rules).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

_SCHEMA_FILE = re.compile(r"^(?P<event>[A-Z][A-Za-z0-9]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


class MessagingError(Exception):
    """Base of the messaging errors."""


class SchemaViolation(MessagingError):
    """A payload does not fit its event's schema: the producer must not publish it."""

    def __init__(self, event_type: str, field: str, reason: str) -> None:
        self.event_type = event_type
        self.field = field
        self.reason = reason
        super().__init__(f"{event_type}: field {field!r} {reason}")


class UndecodableMessage(MessagingError):
    """A message whose headers or bytes can't be read: it goes to the dead-letter topic."""


class UnknownSchema(UndecodableMessage):
    """A message written with a schema (fingerprint) this codec doesn't know."""


class UnknownEventType(MessagingError):
    """An event type (or version) with no schema in the contracts folder."""


@dataclass(frozen=True)
class EventSchema:
    """One ``<Event>.v<N>.avsc`` file, parsed."""

    event_type: str
    version: int
    fingerprint: str  # 16 hex digits
    parsed: Any  # fastavro's parsed schema
    field_names: frozenset[str]
    required_fields: frozenset[str]  # fields without a default


class SchemaRegistry:
    """The event schemas of one contracts folder, by (type, version) and by fingerprint."""

    def __init__(self, schemas: list[EventSchema]) -> None:
        self._by_fingerprint = {s.fingerprint: s for s in schemas}
        self._versions: dict[str, dict[int, EventSchema]] = {}
        for s in schemas:
            self._versions.setdefault(s.event_type, {})[s.version] = s

    @classmethod
    def load(cls, contracts_dir: Path | str | None = None) -> SchemaRegistry:
        """Read every ``<Event>.v<N>.avsc`` in ``contracts_dir`` (default: the repo's)."""
        folder = Path(contracts_dir) if contracts_dir is not None else default_contracts_dir()
        schemas = []
        for path in sorted(folder.glob("*.avsc")):
            match = _SCHEMA_FILE.match(path.name)
            if match is None:
                raise ValueError(f"{path}: schema files are named <Event>.v<N>.avsc")
            schemas.append(_parse(path, match["event"], int(match["version"])))
        if not schemas:
            raise ValueError(f"no *.avsc schemas in {folder}")
        return cls(schemas)

    @property
    def event_types(self) -> list[str]:
        return sorted(self._versions)

    def get(self, event_type: str, version: int | None = None) -> EventSchema:
        """The schema of ``event_type`` at ``version`` (``None``: the latest)."""
        versions = self._versions.get(event_type)
        if not versions:
            raise UnknownEventType(f"no schema for event type {event_type!r}")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise UnknownEventType(f"no schema for {event_type} v{version}")
        return versions[version]

    def by_fingerprint(self, fp: str) -> EventSchema:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise UnknownSchema(f"no schema with fingerprint {fp!r}") from None


def _parse(path: Path, event_type: str, version: int) -> EventSchema:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("type") != "record" or raw.get("name") != event_type:
        raise ValueError(f"{path}: must be a record named {event_type!r}")
    # A fresh named-types dict per file: v1 and v2 of one event share a record name.
    parsed = fastavro.parse_schema(raw, named_schemas={})
    fields = raw["fields"]
    return EventSchema(
        event_type=event_type,
        version=version,
        fingerprint=fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"),
        parsed=parsed,
        field_names=frozenset(f["name"] for f in fields),
        required_fields=frozenset(f["name"] for f in fields if "default" not in f),
    )


class AvroCodec:
    """Schemaless Avro binary encoding, validated against the contracts.

    ``reader_versions`` pins, per event type, the version payloads are decoded *into* (default:
    the latest the registry knows). A consumer whose handlers were written for v1 may pin v1:
    it still reads v2 messages, resolved to v1's shape (Avro forward compatibility).
    """

    def __init__(self, registry: SchemaRegistry, *, reader_versions: Mapping[str, int] | None = None) -> None:
        self.registry = registry
        self.reader_versions = dict(reader_versions or {})
        for event_type, version in self.reader_versions.items():
            registry.get(event_type, version)  # an unknown pin fails now, not on the first message

    @classmethod
    def from_contracts(
        cls, contracts_dir: Path | str | None = None, *, reader_versions: Mapping[str, int] | None = None
    ) -> AvroCodec:
        return cls(SchemaRegistry.load(contracts_dir), reader_versions=reader_versions)

    def encode(
        self, event_type: str, payload: Mapping[str, Any], version: int | None = None
    ) -> tuple[bytes, str, int]:
        """Encode ``payload``; return ``(bytes, writer fingerprint, version)``.

        Raises ``SchemaViolation`` naming the offending field, so a bad event fails where it is
        written (the domain transaction), never later in the relay or a consumer.
        """
        schema = self.registry.get(event_type, version)
        _check_fields(schema, payload)
        try:
            validate(dict(payload), schema.parsed, raise_errors=True)
        except ValidationError as exc:
            first = exc.errors[0]
            field = str(first.field).removeprefix(f"{_fullname(schema)}.")
            raise SchemaViolation(event_type, field, f"is {first.datum!r}, expected {first.schema}") from None
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, schema.parsed, dict(payload), strict_allow_default=True)
        except (ValueError, TypeError) as exc:  # nested records: fastavro names the field
            raise SchemaViolation(event_type, "?", str(exc)) from None
        return out.getvalue(), schema.fingerprint, schema.version

    def decode(self, data: bytes, fp: str) -> tuple[str, int, dict[str, Any]]:
        """Decode bytes written with schema ``fp``; return ``(event_type, version, payload)``.

        The payload is shaped by the latest schema of the event type, or the pinned one (Avro
        schema resolution); the version returned is the writer's.
        """
        writer = self.registry.by_fingerprint(fp)
        reader = self.registry.get(writer.event_type, self.reader_versions.get(writer.event_type))
        buffer = io.BytesIO(data)
        try:
            payload = fastavro.schemaless_reader(buffer, writer.parsed, reader.parsed)
        except Exception as exc:  # fastavro raises many kinds (EOFError, IndexError, ...)
            raise UndecodableMessage(
                f"bytes are not a {writer.event_type} v{writer.version}: {exc!r}"
            ) from exc
        if buffer.tell() != len(data):  # a valid prefix followed by junk is still junk
            raise UndecodableMessage(
                f"{len(data) - buffer.tell()} trailing bytes after a {writer.event_type}"
            )
        if not isinstance(payload, dict):
            raise UndecodableMessage(f"{writer.event_type} did not decode to a record")
        return writer.event_type, writer.version, payload


def _fullname(schema: EventSchema) -> str:
    return str(schema.parsed["name"])


def _check_fields(schema: EventSchema, payload: Mapping[str, Any]) -> None:
    # fastavro's validate() neither names a missing field nor rejects an unknown one.
    if not isinstance(payload, Mapping):
        raise SchemaViolation(schema.event_type, "", "payload must be a mapping")
    missing = sorted(schema.required_fields - payload.keys())
    if missing:
        raise SchemaViolation(schema.event_type, missing[0], "is required")
    unknown = sorted(payload.keys() - schema.field_names)
    if unknown:
        raise SchemaViolation(schema.event_type, unknown[0], "is not in the schema")


CONTRACTS_DIR_ENV = "EVENT_CONTRACTS_DIR"


def default_contracts_dir() -> Path:
    """``$EVENT_CONTRACTS_DIR`` if set (e.g. in a container), else the repo's ``contracts/events``
    (the nearest one above this file)."""
    if os.environ.get(CONTRACTS_DIR_ENV):
        return Path(os.environ[CONTRACTS_DIR_ENV])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "contracts" / "events"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no contracts/events folder above " + __file__)
