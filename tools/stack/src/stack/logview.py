"""``stack logs``: the stack's log files for people — one line per event, colours on a terminal.

Services write one JSON object per line (``common.logging``: what production log pipelines want).
Here each becomes ``12:00:01.234 room      INFO  message  key=value … trace=4bf92f35``; lines
that are not JSON (Kafka's, the runner's ``---`` markers) pass through as they are. ``--json``
prints the files' own lines. ``--trace ID`` gathers one request's lines (its trace id or its
request id) from every log and prints them in time order, then stops.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

TAIL_BYTES = 256_000  # logs grow large: only the tail is needed to show the last lines
FOLLOW_INTERVAL_S = 0.3

# Keys shown in the fixed columns (or, uvicorn's color_message, the message again): not repeated as key=value.
_FIXED = ("ts", "level", "service", "logger", "message", "request_id", "trace_id", "span_id", "color_message")
_LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}
_NAME_COLOURS = ("36", "35", "34", "33", "32", "96", "95", "94", "93", "92")


def wants_colour(stream: TextIO) -> bool:
    """Colours on a terminal, unless ``NO_COLOR`` is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def parse(line: str) -> dict[str, Any] | None:
    """The JSON object a service logged on this line, or ``None`` for any other line."""
    if not line.startswith("{"):
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "message" in doc else None


@dataclass(frozen=True)
class Renderer:
    """Turns one raw line of the log ``name`` into what ``stack logs`` prints."""

    width: int
    colour: bool = False
    raw: bool = False

    def __call__(self, name: str, line: str) -> str:
        label = self._paint(name.ljust(self.width), _NAME_COLOURS[sum(map(ord, name)) % len(_NAME_COLOURS)])
        doc = None if self.raw else parse(line)
        if doc is None:
            return f"{label} | {line}"
        level = str(doc.get("level", "")).upper()
        parts = [
            _clock(str(doc.get("ts", ""))),
            label,
            self._paint(level.ljust(5), _LEVEL_COLOURS.get(level, "0")),
            str(doc.get("message", "")),
        ]
        extras = [f"{key}={_value(value)}" for key, value in doc.items() if key not in _FIXED]
        if doc.get("trace_id"):
            extras.append(f"trace={str(doc['trace_id'])[:8]}")
        if extras:
            parts.append(self._paint(" ".join(extras), "2"))
        return " ".join(parts)

    def _paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text


def _clock(ts: str) -> str:
    # "2026-12-02T13:58:36.044+00:00" → "13:58:36.044": the day is the same for a whole session.
    return ts[11:23] if len(ts) >= 23 else ts


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or " " in text) else text


def last_lines(path: Path, count: int) -> tuple[list[str], int]:
    """The last ``count`` complete lines of ``path`` and the offset to follow from."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(size - TAIL_BYTES, 0))
            data = fh.read()
    except OSError:
        return [], 0
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode("utf-8", "replace").splitlines()
    return (lines[-count:] if count > 0 else []), size - (len(data) - end)


def new_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """The complete lines written to ``path`` since ``offset``, and the next offset."""
    try:
        size = path.stat().st_size
    except OSError:
        return [], 0
    if size < offset:
        offset = 0  # truncated or replaced (`make clean`): start again from the top
    if size == offset:
        return [], offset
    with path.open("rb") as fh:
        fh.seek(offset)
        chunk = fh.read()
    # Only complete lines; a partial last line waits for the next round.
    end = chunk.rfind(b"\n") + 1
    return chunk[:end].decode("utf-8", "replace").splitlines(), offset + end


def show(paths: list[Path], render: Renderer, lines: int, follow: bool, out: TextIO) -> None:
    """Print the last ``lines`` of each log, then (``follow``) what they get, like ``tail -F``."""
    offsets: dict[Path, int] = {}
    for path in paths:
        tail, offsets[path] = last_lines(path, lines)
        out.writelines(render(path.stem, line) + "\n" for line in tail)
    out.flush()
    while follow:
        for path in paths:
            fresh, offsets[path] = new_lines(path, offsets[path])
            out.writelines(render(path.stem, line) + "\n" for line in fresh)
        out.flush()
        time.sleep(FOLLOW_INTERVAL_S)


def trace_lines(paths: Iterable[Path], ident: str) -> Iterator[tuple[str, str]]:
    """``(log name, raw line)`` of every JSON line whose trace id or request id is ``ident``,
    from all ``paths``, in time order (ISO timestamps in UTC sort as text)."""
    found: list[tuple[str, str, str]] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if ident not in line:  # cheap before parsing: most lines are someone else's
                continue
            doc = parse(line)
            if doc is not None and ident in (doc.get("trace_id"), doc.get("request_id")):
                found.append((str(doc.get("ts", "")), path.stem, line))
    for _ts, name, line in sorted(found, key=lambda item: item[0]):
        yield name, line


def show_trace(paths: list[Path], ident: str, render: Renderer, out: TextIO) -> int:
    """Print one request's lines across every log; the number printed (0: say so on stderr)."""
    count = 0
    for name, line in trace_lines(paths, ident):
        out.write(render(name, line) + "\n")
        count += 1
    if not count:
        print(f"no log line carries trace id or request id {ident!r}", file=sys.stderr)
    return count
