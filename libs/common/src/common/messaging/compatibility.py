"""The event contracts' rules, checked: conventions, and compatibility between versions.

A consumer may meet any version of an event: old messages stay in topics (retention) and in
dead-letter topics (re-drive), and producers and consumers are deployed one at a time. So for
every event, every version must be

* **BACKWARD** compatible with every earlier one: a reader on the newer version reads messages
  written with the older (new consumer, old messages);
* **FORWARD** compatible with every earlier one: a reader on the older version reads messages
  written with the newer (old consumer, new producer).

The verdict is Apache Avro's own ``ReaderWriterCompatibilityChecker``; this module only runs it
in both directions over a contracts folder and turns its findings into sentences that name the
event, the versions, the direction and the offending field. Conventions checked too: files
named ``<Record>.v<N>.avsc`` with no gap between versions, a namespace (the same for every
version), a doc on the record and on every field, and defaults that fit their field's type.

``python tools/contracts/avro.py check`` runs it from the command line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)
from avro.errors import AvroException
from fastavro.validation import validate

from common.messaging.codec import _SCHEMA_FILE

Direction = Literal["BACKWARD", "FORWARD"]
DIRECTIONS: tuple[Direction, ...] = ("BACKWARD", "FORWARD")


@dataclass(frozen=True)
class Problem:
    """One broken rule. ``str(problem)`` is the sentence a developer reads in CI."""

    event_type: str
    message: str
    field: str | None = None  # the offending field (dotted path when nested)
    direction: Direction | None = None
    versions: tuple[int, int] | None = None  # (older, newer)
    file: str | None = None

    def __str__(self) -> str:
        if self.direction is not None and self.versions is not None:
            old, new = self.versions
            reader, writer = (new, old) if self.direction == "BACKWARD" else (old, new)
            where = f"field {self.field!r}" if self.field else "the record"
            return (
                f"{self.event_type}: v{new} is not {self.direction} compatible with v{old} "
                f"(a v{reader} reader can't read v{writer} messages): {where}: {self.message}"
            )
        where = self.file or self.event_type
        return f"{where}: {f'field {self.field!r}: ' if self.field else ''}{self.message}"


@dataclass(frozen=True)
class SchemaFile:
    """One ``<Record>.v<N>.avsc`` that parsed."""

    event_type: str
    version: int
    path: Path
    raw: dict[str, Any]
    schema: avro.schema.RecordSchema


def check_contracts(folder: Path | str) -> list[Problem]:
    """Every problem of the ``*.avsc`` files in ``folder`` (empty: all good)."""
    folder = Path(folder)
    problems: list[Problem] = []
    files: dict[str, dict[int, SchemaFile]] = {}
    paths = sorted(folder.glob("*.avsc"))
    if not paths:
        return [Problem(str(folder), "no *.avsc schemas here")]
    for path in paths:
        parsed = _load(path, problems)
        if parsed is not None:
            problems += _conventions(parsed)
            files.setdefault(parsed.event_type, {})[parsed.version] = parsed
    for event_type, versions in sorted(files.items()):
        problems += _version_sequence(event_type, versions)
        ordered = [versions[v] for v in sorted(versions)]
        for i, older in enumerate(ordered):
            for newer in ordered[i + 1 :]:
                problems += check_pair(older, newer)
    return problems


def check_pair(older: SchemaFile, newer: SchemaFile) -> list[Problem]:
    """Both directions between two versions of one event."""
    problems: list[Problem] = []
    for direction in DIRECTIONS:
        reader, writer = (newer, older) if direction == "BACKWARD" else (older, newer)
        verdict = _compatibility(reader.schema, writer.schema)
        if verdict.compatibility is SchemaCompatibilityType.compatible:
            continue
        found = list(_offending_fields(reader, writer))
        if not found:  # not down to a field (e.g. the record was renamed): the checker's words
            found = [(None, _sentence(verdict, reader, writer))]
        versions = (older.version, newer.version)
        problems += [
            Problem(older.event_type, message, field, direction, versions) for field, message in found
        ]
    return problems


# -- compatibility ---------------------------------------------------------------------------


def _compatibility(reader: avro.schema.Schema, writer: avro.schema.Schema) -> SchemaCompatibilityResult:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result: SchemaCompatibilityResult = checker.get_compatibility(reader, writer)
    return result


def _offending_fields(reader: SchemaFile, writer: SchemaFile) -> Iterable[tuple[str | None, str]]:
    """``(field, why)`` for each reader field the writer's messages can't fill.

    The checker reports locations as ``/fields/<index>/...`` but loses them below a union on
    the writer side (e.g. a field that was optional becomes required). So each reader field
    is checked alone, against the whole writer: whatever is found belongs to that field.
    """
    for field in reader.raw["fields"]:
        alone = {**reader.raw, "fields": [field]}
        try:
            schema = avro.schema.parse(json.dumps(alone))
        except AvroException:  # refers to a named type defined by another field
            continue
        verdict = _compatibility(schema, writer.schema)
        if verdict.compatibility is SchemaCompatibilityType.compatible:
            continue
        if set(verdict.incompatibilities) != {SchemaIncompatibilityType.name_mismatch}:  # a record matter
            path = _field_path(alone, verdict.locations) or str(field["name"])
            yield path, _sentence(verdict, reader, writer)


def _sentence(verdict: SchemaCompatibilityResult, reader: SchemaFile, writer: SchemaFile) -> str:
    r, w = f"v{reader.version}", f"v{writer.version}"
    newer = max(r, w, key=lambda v: int(v[1:]))
    kinds = set(verdict.incompatibilities)
    details = "; ".join(sorted(verdict.messages))
    if kinds == {SchemaIncompatibilityType.reader_field_missing_default_value}:
        fix = (
            f"give it a default in {r}"
            if reader.version > writer.version
            else f"keep writing it in {w}, its doc saying it is deprecated"
        )
        return f"{w} messages don't carry it and {r} has no default for it (fix: {fix})"
    if kinds <= {SchemaIncompatibilityType.type_mismatch, SchemaIncompatibilityType.missing_union_branch}:
        return (
            f"its type changed: {details} (fix: keep the old type in {newer}; "
            "add a new optional field with the new type)"
        )
    names = ", ".join(sorted(k.value for k in kinds))
    return f"{names}: {details}"


def _field_path(raw: Mapping[str, Any], locations: Iterable[str]) -> str | None:
    """``/fields/0/type/fields/2/type`` → ``address.city`` (names read from ``raw``)."""
    for location in sorted(locations):
        names: list[str] = []
        node: Any = raw
        parts = [p for p in location.split("/") if p]
        for i, part in enumerate(parts):
            if part == "fields" and i + 1 < len(parts) and isinstance(node, Mapping):
                node = node["fields"][int(parts[i + 1])]
                names.append(str(node["name"]))
            elif part in ("type", "items", "values") and isinstance(node, Mapping):
                node = node.get(part, node)
            elif part.isdigit() and isinstance(node, list):
                node = node[int(part)]
        if names:
            return ".".join(names)
    return None


# -- conventions -----------------------------------------------------------------------------


def _load(path: Path, problems: list[Problem]) -> SchemaFile | None:
    match = _SCHEMA_FILE.match(path.name)
    if match is None:
        problems.append(Problem(path.stem, "file names are <Record>.v<N>.avsc (N from 1)", file=path.name))
        return None
    event_type, version = match["event"], int(match["version"])
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        schema = avro.schema.parse(json.dumps(raw))
    except (ValueError, AvroException) as exc:
        problems.append(Problem(event_type, f"not a valid Avro schema: {exc}", file=path.name))
        return None
    if not isinstance(schema, avro.schema.RecordSchema):
        problems.append(Problem(event_type, "an event schema is a record", file=path.name))
        return None
    if schema.name != event_type:
        problems.append(
            Problem(
                event_type,
                f"the record is named {schema.name!r}: the file must be {schema.name}.v{version}.avsc",
                file=path.name,
            )
        )
        return None
    return SchemaFile(event_type, version, path, raw, schema)


def _conventions(schema: SchemaFile) -> list[Problem]:
    def problem(message: str, field: str | None = None) -> Problem:
        return Problem(schema.event_type, message, field=field, file=schema.path.name)

    problems = []
    if not schema.raw.get("namespace"):
        problems.append(problem('no "namespace"'))
    problems += [problem(message, field) for field, message in _undocumented(schema.raw)]
    for field in schema.raw["fields"]:
        if "default" in field and not _default_fits(field["type"], field["default"]):
            problems.append(
                problem(
                    f"default {field['default']!r} doesn't fit its type "
                    '(for a union, it must fit the first branch: put "null" first for a null default)',
                    field["name"],
                )
            )
    return problems


def _undocumented(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str | None, str]]:
    found: list[tuple[str | None, str]] = []
    if not str(record.get("doc") or "").strip():
        found.append((prefix.rstrip(".") or None, 'no "doc" on the record'))
    for field in record.get("fields", []):
        name = f"{prefix}{field['name']}"
        if not str(field.get("doc") or "").strip():
            found.append((name, 'no "doc"'))
        for branch in field["type"] if isinstance(field["type"], list) else [field["type"]]:
            if isinstance(branch, Mapping) and branch.get("type") == "record":
                found += _undocumented(branch, f"{name}.")
    return found


def _default_fits(field_type: Any, default: Any) -> bool:
    first = field_type[0] if isinstance(field_type, list) else field_type
    try:
        return bool(validate(default, first, raise_errors=False))
    except Exception:  # fastavro can't resolve a reference to another named type: not our call
        return True


def _version_sequence(event_type: str, versions: Mapping[int, SchemaFile]) -> list[Problem]:
    problems = []
    # Contiguous, from the oldest still kept: a version is retired (its file deleted) only from
    # the bottom, once no message of it is left anywhere (docs/contracts.md).
    missing = sorted(set(range(min(versions), max(versions) + 1)) - set(versions))
    if missing:
        gaps = ", ".join(f"v{v}" for v in missing)
        problems.append(Problem(event_type, f"versions must follow each other without gaps: {gaps} missing"))
    namespaces = {str(f.raw.get("namespace")) for f in versions.values() if f.raw.get("namespace")}
    if len(namespaces) > 1:
        problems.append(
            Problem(event_type, f"every version must keep one namespace, found {sorted(namespaces)}")
        )
    return problems
