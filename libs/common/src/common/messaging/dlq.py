"""Dead-letter topics: see what was parked and why, and send it back once the cause is fixed.

A redrive republishes the original key, bytes and envelope headers to the origin topic. It is
safe to redrive too much: an event that was applied in the meantime is a duplicate for the
consumer's processed-events table and is skipped. Kafka can't delete single messages, so the
dead letters stay in the DLQ topic (until retention) after a redrive.

    python -m common.messaging.dlq list room.reservations.dlq [--bootstrap HOST:PORT]
    python -m common.messaging.dlq redrive room.reservations.dlq [--event-id ID ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from kafka.structs import TopicPartition

from common.messaging.codec import UndecodableMessage
from common.messaging.consumer import (
    DLQ_HEADER_PREFIX,
    H_DLQ_CONSUMER,
    H_DLQ_ERROR_HISTORY,
    H_DLQ_ORIGIN_OFFSET,
    H_DLQ_ORIGIN_PARTITION,
    H_DLQ_ORIGIN_TOPIC,
)
from common.messaging.envelope import H_EVENT_ID, H_EVENT_TYPE, Envelope, Headers
from common.messaging.producer import create_producer, new_consumer
from common.messaging.topics import DLQ_SUFFIX

DEFAULT_BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter topic, with where it came from and what went wrong."""

    dlq_partition: int
    dlq_offset: int
    origin_topic: str
    origin_partition: int | None
    origin_offset: int | None
    consumer: str | None
    error_history: list[dict[str, Any]]
    envelope: Envelope | None  # None when the headers themselves were the problem
    key: bytes | None
    value: bytes | None
    headers: Headers  # all headers, the dlq_* ones included

    @property
    def original_headers(self) -> Headers:
        """The headers the message had before it was dead-lettered."""
        return [(n, v) for n, v in self.headers if not n.startswith(DLQ_HEADER_PREFIX)]

    @property
    def event_id(self) -> str | None:
        return _header(self.headers, H_EVENT_ID)

    @property
    def event_type(self) -> str | None:
        return _header(self.headers, H_EVENT_TYPE)


def list_dead_letters(bootstrap: str, dlq_topic: str, limit: int = 100) -> list[DeadLetter]:
    """The first ``limit`` dead letters of ``dlq_topic``, oldest first."""
    return _read_all(bootstrap, dlq_topic)[:limit]


def redrive(bootstrap: str, dlq_topic: str, *, event_ids: Collection[str] | None = None) -> int:
    """Republish dead letters (all, or those with the given event ids) to their origin topic.

    Returns how many were republished (each acknowledged by the broker).
    """
    letters = [
        letter
        for letter in _read_all(bootstrap, dlq_topic)
        if event_ids is None or letter.event_id in event_ids
    ]
    if not letters:
        return 0
    producer = create_producer(bootstrap, client_id="dlq-redrive")
    try:
        futures = [
            producer.send(
                letter.origin_topic,
                key=letter.key,
                value=letter.value if letter.value is not None else b"",
                headers=letter.original_headers,
            )
            for letter in letters
        ]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=0)  # raises if any was not acknowledged
    finally:
        producer.close(timeout=5)
    return len(letters)


def _read_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[DeadLetter]:
    # No group: reading the DLQ must not move anyone's offsets.
    consumer = new_consumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="dlq-reader",
        bootstrap_timeout_ms=5_000,
        request_timeout_ms=10_000,
        fetch_max_wait_ms=100,
        allow_auto_create_topics=False,
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s:.0f}s")
            for tp, messages in consumer.poll(timeout_ms=200).items():
                records.extend(m for m in messages if m.offset < end[tp])
    finally:
        consumer.close(autocommit=False)
    records.sort(key=lambda m: (m.timestamp, m.partition, m.offset))
    return [_dead_letter(topic, m) for m in records]


def _dead_letter(topic: str, message: Any) -> DeadLetter:
    headers: Headers = [(n, v) for n, v in (message.headers or []) if v is not None]
    try:
        envelope: Envelope | None = Envelope.from_headers(headers, message.key)
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


def _describe(letter: DeadLetter) -> str:
    key = letter.key.decode(errors="replace") if letter.key is not None else "-"
    lines = [
        f"[{letter.dlq_partition}@{letter.dlq_offset}] {letter.event_type or '?'} "
        f"event_id={letter.event_id or '?'} key={key}",
        f"    from {letter.origin_topic}[{letter.origin_partition}]@{letter.origin_offset}"
        f" by {letter.consumer or '?'}",
    ]
    for entry in letter.error_history:
        lines.append(f"    #{entry.get('attempt', '?')} {entry.get('at', '')} {entry.get('error')}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``list`` or ``redrive`` a dead-letter topic."""
    parser = argparse.ArgumentParser(
        prog="python -m common.messaging.dlq", description="List or redrive a dead-letter topic."
    )
    parser.add_argument("command", choices=["list", "redrive"])
    parser.add_argument("dlq_topic", help="e.g. room.reservations.dlq")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get(DEFAULT_BOOTSTRAP_ENV, "127.0.0.1:9092"),
        help=f"Kafka bootstrap servers (default: ${DEFAULT_BOOTSTRAP_ENV} or 127.0.0.1:9092)",
    )
    parser.add_argument("--limit", type=int, default=100, help="list: at most this many")
    parser.add_argument(
        "--event-id", action="append", dest="event_ids", help="redrive: only this event (repeatable)"
    )
    args = parser.parse_args(argv)
    if not args.dlq_topic.endswith(DLQ_SUFFIX):
        parser.error(f"{args.dlq_topic!r} is not a dead-letter topic (*{DLQ_SUFFIX})")
    try:
        if args.command == "list":
            letters = list_dead_letters(args.bootstrap, args.dlq_topic, args.limit)
            print(f"{args.dlq_topic}: {len(letters)} dead letter(s)")
            for letter in letters:
                print(_describe(letter))
        else:
            count = redrive(args.bootstrap, args.dlq_topic, event_ids=args.event_ids)
            print(f"redrove {count} message(s) from {args.dlq_topic}")
    except Exception as exc:  # an operator tool: one clear line, not a traceback
        print(f"error ({args.bootstrap}): {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
