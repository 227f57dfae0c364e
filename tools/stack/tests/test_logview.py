"""``stack logs``: JSON lines rendered for people, and one request's lines across every log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stack.cli import main
from stack.logview import Renderer, new_lines


def _line(ts: str, service: str, message: str, **extra: Any) -> str:
    doc = {"ts": f"2026-12-02T{ts}+00:00", "level": "INFO", "service": service, "logger": "x"}
    doc |= {"message": message, "request_id": None, "trace_id": None} | extra
    return json.dumps(doc)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    (logs / "gateway.log").write_text(
        _line("10:00:00.100", "gateway", "POST /api/v1/reservations -> 201", trace_id=trace, request_id="r1")
        + "\n"
        + _line("10:00:00.400", "gateway", "someone else's request", trace_id="f" * 32)
        + "\n"
    )
    (logs / "room.log").write_text(
        "--- 2026-12-02 10:00:00 stack: python -m room_service\n"
        + _line("10:00:00.050", "room", "reservation created", trace_id=trace, room_id="r105")
        + "\n"
    )
    (logs / "notification.log").write_text(
        _line("10:00:00.300", "notification", "mail sent", trace_id=trace, subject="Reservation confirmed")
        + "\n"
    )
    return tmp_path


def test_a_json_line_becomes_one_readable_line_and_other_lines_pass_through() -> None:
    render = Renderer(width=7)
    line = _line("13:58:36.044", "room", "GET /rooms -> 200", status=200, trace_id="4bf92f35" + "0" * 24)

    assert render("room", line) == "13:58:36.044 room    INFO  GET /rooms -> 200 status=200 trace=4bf92f35"
    assert render("kafka", "[2026-12-02] INFO started") == "kafka   | [2026-12-02] INFO started"
    assert Renderer(width=4, raw=True)("room", line) == f"room | {line}"


def test_colours_only_when_asked_and_extras_with_spaces_are_quoted() -> None:
    line = _line("13:58:36.044", "room", "mail failed", error="451 try later")

    plain = Renderer(width=4)("room", line)
    coloured = Renderer(width=4, colour=True)("room", line)

    assert plain.endswith('error="451 try later"')
    assert "\033[" not in plain
    assert "\033[32mINFO " in coloured  # the level, green


def test_trace_prints_one_requests_lines_from_every_log_in_time_order(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--run-dir", str(run_dir), "logs", "--trace", "4bf92f3577b34da6a3ce929d0e0e4736"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["10:00:00.050", "room"],
        ["10:00:00.100", "gateway"],
        ["10:00:00.300", "notification"],
    ]
    assert "someone else's" not in "\n".join(lines)


def test_trace_finds_a_request_id_too_and_says_when_nothing_matches(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--run-dir", str(run_dir), "logs", "--trace", "r1"]) == 0
    assert "POST /api/v1/reservations" in capsys.readouterr().out

    assert main(["--run-dir", str(run_dir), "logs", "--trace", "0" * 32]) == 1
    assert "no log line carries" in capsys.readouterr().err


def test_no_follow_prints_the_last_lines_of_each_log(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--run-dir", str(run_dir), "logs", "--no-follow", "-n", "1", "gateway", "room"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "10:00:00.400 gateway INFO  someone else's request trace=ffffffff",
        "10:00:00.050 room    INFO  reservation created room_id=r105 trace=4bf92f35",
    ]


def test_following_returns_only_complete_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "room.log"
    log.write_text("one\n")
    _, offset = new_lines(log, 0)
    with log.open("a") as fh:
        fh.write("two\nthr")

    fresh, offset = new_lines(log, offset)
    assert fresh == ["two"]
    with log.open("a") as fh:
        fh.write("ee\n")
    assert new_lines(log, offset)[0] == ["three"]
