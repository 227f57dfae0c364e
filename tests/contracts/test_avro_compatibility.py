"""The event contracts' check: the real contracts pass it, and each kind of breaking change fails it
with the event, the versions, the direction and the offending field named.

The breaking changes are fixtures (tests/contracts/fixtures/avro/<case>/, each with a README),
never edits of contracts/events.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.messaging import default_contracts_dir
from common.messaging.compatibility import Problem, check_contracts

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "avro"
CLI = ROOT / "tools" / "contracts" / "avro.py"


def test_the_contracts_pass_the_check() -> None:
    problems = check_contracts(default_contracts_dir())
    assert problems == [], "\n".join(map(str, problems))


def test_the_cli_passes_on_the_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("avro_contracts_cli", CLI)
    assert spec is not None
    assert spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert "all compatible, conventions kept" in out
    assert "5 events, 6 schema files" in out


# (fixture, event, [(field, direction), ...]: exactly the problems the check must report)
BREAKING = [
    ("required_field_without_default", "ReservationCreated", [("guests", "BACKWARD")]),
    ("type_change", "ReservationCreated", [("nights", "BACKWARD"), ("nights", "FORWARD")]),
    ("removed_field", "ReservationCreated", [("nights", "FORWARD")]),
    # The Avro checker loses the location under a writer-side union: the field is still named.
    ("optional_made_required", "UserRegistered", [("display_name", "BACKWARD")]),
]


@pytest.mark.parametrize(("case", "event", "expected"), BREAKING, ids=[c[0] for c in BREAKING])
def test_a_breaking_change_fails_naming_the_field_and_direction(
    case: str, event: str, expected: list[tuple[str, str]]
) -> None:
    problems = check_contracts(FIXTURES / case)
    assert [(p.field, p.direction) for p in problems] == expected, "\n".join(map(str, problems))
    for problem in problems:
        text = str(problem)
        assert problem.event_type == event
        assert problem.versions == (1, 2)
        assert text.startswith(f"{event}: v2 is not {problem.direction} compatible with v1")
        assert f"field {problem.field!r}" in text
        assert "fix:" in text


def test_the_messages_say_what_went_wrong() -> None:
    [required] = check_contracts(FIXTURES / "required_field_without_default")
    assert str(required) == (
        "ReservationCreated: v2 is not BACKWARD compatible with v1 (a v2 reader can't read v1 "
        "messages): field 'guests': v1 messages don't carry it and v2 has no default for it "
        "(fix: give it a default in v2)"
    )
    [removed] = check_contracts(FIXTURES / "removed_field")
    assert "a v1 reader can't read v2 messages" in str(removed)
    assert "keep writing it in v2" in str(removed)
    backward, forward = check_contracts(FIXTURES / "type_change")
    assert "reader type: string not compatible with writer type: int" in str(backward)
    assert "reader type: int not compatible with writer type: string" in str(forward)


def test_the_cli_fails_on_a_breaking_change() -> None:
    # As CI runs it: a script (whose name must not shadow the Apache avro package), exit status 1.
    result = subprocess.run(
        [sys.executable, str(CLI), "check", "--dir", str(FIXTURES / "required_field_without_default")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ReservationCreated: v2 is not BACKWARD compatible with v1" in result.stdout
    assert "field 'guests'" in result.stdout
    assert "1 problem(s)" in result.stderr


# -- every version against every earlier one, and the conventions ---------------------------


def _record(name: str, fields: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": "t.events",
        "doc": "A thing.",
        "fields": fields,
        **extra,
    }


def _field(name: str, type_: Any = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"The {name}.", **extra}


def _write(folder: Path, filename: str, schema: dict[str, Any]) -> None:
    (folder / filename).write_text(json.dumps(schema))


def _texts(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def test_every_version_is_checked_against_every_earlier_one(tmp_path: Path) -> None:
    # v1 → v2 adds colour with a default, v2 → v3 drops the default: each step is fine, but a v3
    # reader can't read the v1 messages still in the topic (or coming back from a DLQ).
    _write(tmp_path, "Thing.v1.avsc", _record("Thing", [_field("id")]))
    _write(tmp_path, "Thing.v2.avsc", _record("Thing", [_field("id"), _field("colour", default="blue")]))
    _write(tmp_path, "Thing.v3.avsc", _record("Thing", [_field("id"), _field("colour")]))
    [problem] = check_contracts(tmp_path)
    assert (problem.versions, problem.direction, problem.field) == ((1, 3), "BACKWARD", "colour")
    assert str(problem).startswith("Thing: v3 is not BACKWARD compatible with v1")


def test_a_nested_field_is_named_by_its_path(tmp_path: Path) -> None:
    def stay(check_in: str) -> dict[str, Any]:
        return _field(
            "stay",
            {"type": "record", "name": "Stay", "doc": "Dates.", "fields": [_field("check_in", check_in)]},
        )

    _write(tmp_path, "Thing.v1.avsc", _record("Thing", [stay("string")]))
    _write(tmp_path, "Thing.v2.avsc", _record("Thing", [stay("int")]))
    assert {(p.field, p.direction) for p in check_contracts(tmp_path)} == {
        ("stay.check_in", "BACKWARD"),
        ("stay.check_in", "FORWARD"),
    }


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"Thing.v1.avsc": _record("Thing", [_field("id")], namespace="")},
            ['Thing.v1.avsc: no "namespace"'],
            id="namespace",
        ),
        pytest.param(
            {"Thing.v1.avsc": _record("Thing", [_field("id")], doc="")},
            ['Thing.v1.avsc: no "doc" on the record'],
            id="record-doc",
        ),
        pytest.param(
            {"Thing.v1.avsc": _record("Thing", [_field("id", doc=" ")])},
            ["Thing.v1.avsc: field 'id': no \"doc\""],
            id="field-doc",
        ),
        pytest.param(
            {"thing-v1.avsc": _record("Thing", [_field("id")])},
            ["thing-v1.avsc: file names are <Record>.v<N>.avsc (N from 1)"],
            id="file-name",
        ),
        pytest.param(
            {"Thing.v1.avsc": _record("Other", [_field("id")])},
            ["Thing.v1.avsc: the record is named 'Other': the file must be Other.v1.avsc"],
            id="record-name",
        ),
        pytest.param(
            {
                "Thing.v1.avsc": _record("Thing", [_field("id")]),
                "Thing.v3.avsc": _record("Thing", [_field("id")]),
            },
            ["Thing: versions must follow each other without gaps: v2 missing"],
            id="gap",
        ),
        pytest.param(
            {
                "Thing.v1.avsc": _record("Thing", [_field("id")]),
                "Thing.v2.avsc": _record("Thing", [_field("id")], namespace="other"),
            },
            ["Thing: every version must keep one namespace, found ['other', 't.events']"],
            id="namespace-change",
        ),
        pytest.param(
            {"Thing.v1.avsc": _record("Thing", [_field("n", ["int", "null"], default=None)])},
            [
                "Thing.v1.avsc: field 'n': default None doesn't fit its type (for a union, it must fit "
                'the first branch: put "null" first for a null default)'
            ],
            id="default",
        ),
        pytest.param(
            {
                "Thing.v1.avsc": {
                    "type": "record",
                    "name": "Thing",
                    "fields": [{"name": "id", "type": "strin"}],
                }
            },
            ["Thing.v1.avsc: not a valid Avro schema"],
            id="invalid",
        ),
    ],
)
def test_conventions(tmp_path: Path, files: dict[str, dict[str, Any]], expected: list[str]) -> None:
    for name, schema in files.items():
        _write(tmp_path, name, schema)
    texts = _texts(check_contracts(tmp_path))
    assert len(texts) == len(expected), texts
    for text, start in zip(texts, expected, strict=True):
        assert text.startswith(start), text


def test_the_oldest_versions_may_be_retired(tmp_path: Path) -> None:
    _write(tmp_path, "Thing.v2.avsc", _record("Thing", [_field("id")]))
    _write(tmp_path, "Thing.v3.avsc", _record("Thing", [_field("id"), _field("colour", default="blue")]))
    assert check_contracts(tmp_path) == []


def test_an_empty_folder_is_a_problem(tmp_path: Path) -> None:
    assert _texts(check_contracts(tmp_path)) == [f"{tmp_path}: no *.avsc schemas here"]
