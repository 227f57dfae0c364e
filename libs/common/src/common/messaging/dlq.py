"""Dead-letter topics: see what was parked and why, and send it back once the cause is fixed.

A dead letter belongs to the consumer group that gave up on it (``dlq_consumer``): one poison
message read by three groups is three letters. A redrive sends each letter back to its own
group only: it republishes the original key, bytes and headers to the origin topic with a
``redrive_group`` header, which every other group skips (counted as ``skipped``). Re-sending
to the origin topic keeps one pipeline per group (no extra topics, subscriptions or ordering
rules to learn) at the price of the other groups reading and dropping the copy.

Kafka can't delete single messages, so a letter stays in the DLQ after its redrive. Instead
the redrive writes a *marker* record into the DLQ topic (empty value, ``dlq_redrive_marker``
header naming the letter), in ONE Kafka transaction with the republished message: both are
visible or neither is. ``list`` shows a letter with a marker as redriven, and ``redrive``
skips it, so a letter is redriven at most once; if it fails again, its group writes a new
letter (which can be redriven once in turn). The transactional id is per DLQ topic, so a
second redrive of the same DLQ fences (aborts) one still running before it reads the markers.

    python -m common.messaging.dlq list room.reservations.dlq [--bootstrap HOST:PORT]
    python -m common.messaging.dlq redrive room.reservations.dlq [--event-id ID ...] [--group G ...]

Without ``--bootstrap`` the tool talks to the stack of the run folder (``$RUN_DIR`` or
``<repo>/.run``, its ``stack.json``), else to ``$KAFKA_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kafka.errors import KafkaTimeoutError
from kafka.structs import TopicPartition

from common.messaging.codec import UndecodableMessage
from common.messaging.consumer import (
    DLQ_HEADER_PREFIX,
    H_DLQ_CONSUMER,
    H_DLQ_ERROR_HISTORY,
    H_DLQ_ORIGIN_OFFSET,
    H_DLQ_ORIGIN_PARTITION,
    H_DLQ_ORIGIN_TOPIC,
    H_REDRIVE_GROUP,
)
from common.messaging.envelope import H_EVENT_ID, H_EVENT_TYPE, Envelope, Headers, utc_now_iso
from common.messaging.producer import create_producer, new_consumer
from common.messaging.topics import DLQ_SUFFIX
from common.paths import run_dir

DEFAULT_BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
STACK_STATE_FILE = "stack.json"  # written by tools/stack while a stack runs
H_REDRIVE_MARKER = "dlq_redrive_marker"  # on marker records only: JSON naming the letter
CONNECT_TIMEOUT_MS = 3_000  # an unreachable broker is reported within seconds
READ_TIMEOUT_S = 10.0  # reading up to the end offsets; hundreds of letters take well under 1 s
TRANSACTION_TIMEOUT_MS = 10_000  # a crashed redrive blocks the origin partitions this long, at most
# How long init_transactions (and commit) may wait for the transaction coordinator. The first
# transactional producer on a broker makes it create __transaction_state (50 partitions): that
# took longer than the producer's usual 5 s on a loaded machine (load average 20), and the first
# redrive failed with "Timeout expired while initializing transactional state in 5000 ms".
COORDINATOR_TIMEOUT_MS = 60_000

Progress = Callable[[str], None]


class DlqError(Exception):
    """What an operator should read: the tool prints it as one line, no traceback."""


@dataclass(frozen=True)
class Redriven:
    """The marker of one redrive: which group the letter was sent back to, and when."""

    group: str
    at: str


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter topic, with where it came from and what went wrong."""

    dlq_partition: int
    dlq_offset: int
    origin_topic: str
    origin_partition: int | None
    origin_offset: int | None
    consumer: str | None  # the group that gave up, and the only one a redrive reaches
    error_history: list[dict[str, Any]]
    envelope: Envelope | None  # None when the headers themselves were the problem
    key: bytes | None
    value: bytes | None
    headers: Headers  # all headers, the dlq_* ones included
    redriven: Redriven | None = None

    @property
    def id(self) -> str:
        """``<partition>@<offset>`` in the DLQ topic: what a marker names."""
        return f"{self.dlq_partition}@{self.dlq_offset}"

    @property
    def original_headers(self) -> Headers:
        """The headers the message had before it was dead-lettered."""
        return [
            (n, v) for n, v in self.headers if not n.startswith(DLQ_HEADER_PREFIX) and n != H_REDRIVE_GROUP
        ]

    @property
    def event_id(self) -> str | None:
        return _header(self.headers, H_EVENT_ID)

    @property
    def event_type(self) -> str | None:
        return _header(self.headers, H_EVENT_TYPE)


@dataclass(frozen=True)
class DeadLetters:
    """Everything in a DLQ topic: the letters (oldest first), each marked if it was redriven."""

    topic: str
    letters: list[DeadLetter]
    read_s: float = 0.0

    @property
    def total(self) -> int:
        return len(self.letters)

    @property
    def pending(self) -> list[DeadLetter]:
        return [letter for letter in self.letters if letter.redriven is None]


@dataclass(frozen=True)
class RedriveResult:
    republished: list[DeadLetter] = field(default_factory=list)
    already_redriven: int = 0  # matched, but redriven before: not sent again
    unaddressed: int = 0  # matched, but no dlq_consumer header: no group to send it to


def read_dead_letters(
    bootstrap: str, dlq_topic: str, *, timeout_s: float = READ_TIMEOUT_S, progress: Progress | None = None
) -> DeadLetters:
    """Read ``dlq_topic`` up to its end offsets (no idle wait) and pair letters with markers.

    Raises ``DlqError`` when the broker can't be reached or the topic does not exist.
    """
    began = time.monotonic()
    consumer = _reader(bootstrap)
    try:
        topics = consumer.topics()  # asking for one topic by name could auto-create it
        partitions = consumer.partitions_for_topic(dlq_topic) if dlq_topic in topics else None
        if not partitions:
            known = sorted(t for t in topics if t.endswith(DLQ_SUFFIX))
            raise DlqError(
                f"topic {dlq_topic} does not exist; dead-letter topics here: {', '.join(known) or 'none'}"
            )
        tps = [TopicPartition(dlq_topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)  # read_committed: the last stable offset of each
        if progress:
            progress(f"reading {sum(end.values())} record(s) of {dlq_topic}")
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise DlqError(f"could not read {dlq_topic} to its end within {timeout_s:.0f} s")
            for tp, messages in consumer.poll(timeout_ms=100, max_records=10_000).items():
                records.extend(m for m in messages if m.offset < end[tp])
    finally:
        consumer.close(autocommit=False)
    records.sort(key=lambda m: (m.timestamp, m.partition, m.offset))
    markers: dict[str, Redriven] = {}
    letters: list[DeadLetter] = []
    for record in records:
        marker = _marker(record)
        if marker is not None:
            letter_id, redriven = marker
            markers.setdefault(letter_id, redriven)
        else:
            letters.append(_dead_letter(dlq_topic, record))
    letters = [replace(letter, redriven=markers.get(letter.id)) for letter in letters]
    return DeadLetters(dlq_topic, letters, read_s=time.monotonic() - began)


def list_dead_letters(bootstrap: str, dlq_topic: str, limit: int = 100) -> list[DeadLetter]:
    """The first ``limit`` dead letters of ``dlq_topic``, oldest first ([] if there is no such topic)."""
    try:
        return read_dead_letters(bootstrap, dlq_topic).letters[:limit]
    except DlqError as exc:
        if "does not exist" in str(exc):
            return []
        raise


def redrive(
    bootstrap: str,
    dlq_topic: str,
    *,
    event_ids: Collection[str] | None = None,
    groups: Collection[str] | None = None,
    progress: Progress | None = None,
) -> RedriveResult:
    """Send each matching letter not yet redriven back to its own consumer group, once.

    Letters and markers go in one transaction: on any error nothing is redriven (and the
    error is raised). ``event_ids`` / ``groups`` narrow it down; None means all.
    """
    producer = _redrive_producer(bootstrap, dlq_topic)
    try:
        # Fences an earlier redrive of this DLQ still running (its transaction is aborted), so
        # the markers read next are all there will be.
        producer.init_transactions()
        found = read_dead_letters(bootstrap, dlq_topic, progress=progress)
        matching = [
            letter
            for letter in found.letters
            if (event_ids is None or letter.event_id in event_ids)
            and (groups is None or letter.consumer in groups)
        ]
        todo = [letter for letter in matching if letter.redriven is None and letter.consumer]
        result = RedriveResult(
            republished=todo,
            already_redriven=sum(1 for letter in matching if letter.redriven is not None),
            unaddressed=sum(1 for letter in matching if letter.redriven is None and not letter.consumer),
        )
        if not todo:
            return result
        if progress:
            progress(f"redriving {len(todo)} letter(s) in one transaction")
        producer.begin_transaction()
        try:
            for letter in todo:
                assert letter.consumer is not None  # filtered above
                producer.send(
                    letter.origin_topic,
                    key=letter.key,
                    value=letter.value if letter.value is not None else b"",
                    headers=[*letter.original_headers, (H_REDRIVE_GROUP, letter.consumer.encode())],
                )
                marker = {"letter": letter.id, "group": letter.consumer, "at": utc_now_iso()}
                producer.send(
                    dlq_topic, key=None, value=b"", headers=[(H_REDRIVE_MARKER, json.dumps(marker).encode())]
                )
            producer.commit_transaction()  # flushes; raises if any record was not acknowledged
        except BaseException:
            _abort(producer)
            raise
        return result
    finally:
        producer.close(timeout=5)


def default_bootstrap() -> tuple[str, str]:
    """Where Kafka is, and how we know: the run folder's stack, else the environment."""
    state_path = run_dir() / STACK_STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if isinstance(state.get("kafka_bootstrap"), str):  # every broker of a cluster
            return state["kafka_bootstrap"], str(state_path)
        return f"127.0.0.1:{int(state['kafka_port'])}", str(state_path)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if os.environ.get(DEFAULT_BOOTSTRAP_ENV):
        return os.environ[DEFAULT_BOOTSTRAP_ENV], f"${DEFAULT_BOOTSTRAP_ENV}"
    return "127.0.0.1:9092", "the default"


# -- Kafka clients --------------------------------------------------------------------------------


def _reader(bootstrap: str) -> Any:
    try:
        # No group: reading the DLQ must not move anyone's offsets.
        return new_consumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="dlq-reader",
            bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
            request_timeout_ms=10_000,
            fetch_max_wait_ms=100,
            allow_auto_create_topics=False,
            isolation_level="read_committed",  # aborted redrives (and their markers) don't count
            reconnect_backoff_max_ms=500,
        )
    except KafkaTimeoutError as exc:  # "Unable to bootstrap"
        raise DlqError(
            f"no Kafka broker answers at {bootstrap} within {CONNECT_TIMEOUT_MS / 1000:.0f} s"
        ) from exc


def _redrive_producer(bootstrap: str, dlq_topic: str) -> Any:
    try:
        return create_producer(
            bootstrap,
            client_id="dlq-redrive",
            transactional_id=f"dlq-redrive.{dlq_topic}",
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            bootstrap_timeout_ms=CONNECT_TIMEOUT_MS,
            max_block_ms=COORDINATOR_TIMEOUT_MS,
        )
    except KafkaTimeoutError as exc:  # "Unable to bootstrap"
        raise DlqError(
            f"no Kafka broker answers at {bootstrap} within {CONNECT_TIMEOUT_MS / 1000:.0f} s"
        ) from exc


def _abort(producer: Any) -> None:
    # The original error is what the operator needs; if even the abort fails, the broker
    # aborts the transaction after TRANSACTION_TIMEOUT_MS.
    with contextlib.suppress(Exception):
        producer.abort_transaction()


# -- records ---------------------------------------------------------------------------------------


def _marker(message: Any) -> tuple[str, Redriven] | None:
    raw = _header(message.headers or [], H_REDRIVE_MARKER)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return str(data["letter"]), Redriven(group=str(data["group"]), at=str(data.get("at", "")))
    except (ValueError, KeyError, TypeError):
        return None


def _dead_letter(topic: str, message: Any) -> DeadLetter:
    headers: Headers = [(n, v) for n, v in (message.headers or []) if v is not None]
    try:
        envelope: Envelope | None = Envelope.from_headers(
            [(n, v) for n, v in headers if n != H_REDRIVE_GROUP], message.key
        )
    except UndecodableMessage:
        envelope = None
    try:
        history = json.loads(_header(headers, H_DLQ_ERROR_HISTORY) or "[]")
    except ValueError:
        history = [{"error": "unreadable dlq_error_history header"}]
    return DeadLetter(
        dlq_partition=message.partition,
        dlq_offset=message.offset,
        origin_topic=_header(headers, H_DLQ_ORIGIN_TOPIC) or topic.removesuffix(DLQ_SUFFIX),
        origin_partition=_int(_header(headers, H_DLQ_ORIGIN_PARTITION)),
        origin_offset=_int(_header(headers, H_DLQ_ORIGIN_OFFSET)),
        consumer=_header(headers, H_DLQ_CONSUMER),
        error_history=history if isinstance(history, list) else [history],
        envelope=envelope,
        key=message.key,
        value=message.value,
        headers=headers,
    )


def _header(headers: Headers, name: str) -> str | None:
    for header, value in headers:
        if header == name:
            return value.decode(errors="replace")
    return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


# -- the command line ------------------------------------------------------------------------------


def _describe(letter: DeadLetter) -> str:
    key = letter.key.decode(errors="replace") if letter.key is not None else "-"
    state = (
        f"redriven to {letter.redriven.group} at {letter.redriven.at}" if letter.redriven else "not redriven"
    )
    lines = [
        f"[{letter.id}] {letter.event_type or '?'} event_id={letter.event_id or '?'} key={key}",
        f"    group {letter.consumer or '?'} · from {letter.origin_topic}[{letter.origin_partition}]"
        f"@{letter.origin_offset} · {state}",
    ]
    for entry in letter.error_history:
        lines.append(f"    #{entry.get('attempt', '?')} {entry.get('at', '')} {entry.get('error')}")
    return "\n".join(lines)


def _print_list(found: DeadLetters, limit: int) -> None:
    redriven = found.total - len(found.pending)
    print(
        f"{found.topic}: {found.total} dead letter(s), {redriven} redriven, "
        f"{len(found.pending)} not redriven (read in {found.read_s:.1f} s)"
    )
    shown = found.letters[:limit]
    if len(shown) < found.total:
        print(f"showing the oldest {len(shown)} of {found.total} (--limit)")
    for letter in shown:
        print(_describe(letter))


def _print_redrive(topic: str, result: RedriveResult) -> None:
    print(f"redrove {len(result.republished)} letter(s) from {topic}")
    for letter in result.republished:
        event = letter.event_id or "?"
        print(f"    [{letter.id}] event_id={event} -> {letter.origin_topic} for {letter.consumer}")
    if result.already_redriven:
        print(f"skipped {result.already_redriven} letter(s) redriven before (a letter is redriven once)")
    if result.unaddressed:
        print(f"skipped {result.unaddressed} letter(s) without {H_DLQ_CONSUMER} (no group to send them to)")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``list`` or ``redrive`` a dead-letter topic."""
    parser = argparse.ArgumentParser(
        prog="python -m common.messaging.dlq", description="List or redrive a dead-letter topic."
    )
    parser.add_argument("command", choices=["list", "redrive"])
    parser.add_argument("dlq_topic", help="e.g. room.reservations.dlq")
    parser.add_argument(
        "--bootstrap",
        help=f"Kafka bootstrap servers (default: the run folder's stack, else ${DEFAULT_BOOTSTRAP_ENV})",
    )
    parser.add_argument("--limit", type=int, default=100, help="list: show at most this many")
    parser.add_argument(
        "--event-id", action="append", dest="event_ids", help="redrive: only this event (repeatable)"
    )
    parser.add_argument(
        "--group", action="append", dest="groups", help="redrive: only this group's letters (repeatable)"
    )
    args = parser.parse_args(argv)
    if not args.dlq_topic.endswith(DLQ_SUFFIX):
        parser.error(f"{args.dlq_topic!r} is not a dead-letter topic (*{DLQ_SUFFIX})")
    if args.limit < 0:
        parser.error("--limit must be 0 or more")
    bootstrap, source = (args.bootstrap, "--bootstrap") if args.bootstrap else default_bootstrap()

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    progress(f"Kafka at {bootstrap} (from {source})")
    try:
        if args.command == "list":
            _print_list(read_dead_letters(bootstrap, args.dlq_topic, progress=progress), args.limit)
        else:
            found = redrive(
                bootstrap, args.dlq_topic, event_ids=args.event_ids, groups=args.groups, progress=progress
            )
            _print_redrive(args.dlq_topic, found)
    except DlqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # an operator tool: one clear line, not a traceback
        print(f"error ({bootstrap}): {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
