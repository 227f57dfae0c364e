"""What the chaos scenarios check after a fault: nothing lost, nothing doubled, nothing orphaned.

The ledger reads every service's own database (read-only SQL through SQLAlchemy, so the same
checks hold on SQLite and PostgreSQL) and the SMTP sink's mailbox, and compares them with what
the clients were told. "Settled" means the system has nothing left in flight: every outbox row
is published, every consumer group has committed up to the end of its topics, no mail is
waiting. Only then can a missing effect be called lost, or a second one be ruled out.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from stack.runner import Stack
from stack.smtp_sink import read_mailbox

ACTIVE_HOLDS = ("held", "confirmed")
PUBLISHERS = ("auth", "member", "room")  # the services with an outbox


@dataclass
class Booking:
    """A reservation the client was told exists (201), and the user who made it."""

    reservation_id: str
    member_id: str
    email: str


@dataclass
class Audit:
    """The verdict of one check: counts, and a line per problem (empty when all is well)."""

    lost: int = 0
    doubled: int = 0
    orphaned: int = 0
    resent: int = 0  # the same mail (same Message-ID) delivered again: not a double
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.lost == self.doubled == self.orphaned == 0

    def add(self, kind: str, problem: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.problems.append(f"{kind}: {problem}")


class Ledger:
    """Read-only views of the stack's databases, Kafka offsets and mailbox."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._engines: dict[str, Engine] = {}

    # -- raw reads -------------------------------------------------------------------------

    def database_url(self, service: str) -> str:
        """The URL the service runs with (its settings' default: a SQLite file in the run folder)."""
        env = self.stack.service_env(service)
        default = f"sqlite:///{self.stack.run_dir / 'data' / f'{service}.db'}"
        return env.get(f"{service.upper()}_DATABASE_URL") or default

    def engine(self, service: str) -> Engine:
        if service not in self._engines:
            self._engines[service] = create_engine(self.database_url(service))
        return self._engines[service]

    def rows(self, service: str, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine(service).connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()

    # -- settled? --------------------------------------------------------------------------

    def unsent_outbox_rows(self) -> dict[str, int]:
        return {
            svc: self.rows(svc, "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")[0]["n"]
            for svc in PUBLISHERS
        }

    def consumer_lag(self) -> dict[str, int]:
        """Messages each consumer group has not committed yet, summed over its partitions."""
        bootstrap = self.stack.bootstrap_servers
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, request_timeout_ms=10_000, enable_auto_commit=False
        )
        try:
            lag: dict[str, int] = {}
            groups = [g["group_id"] for g in admin.list_groups()]
            offsets = admin.list_group_offsets(groups) if groups else {}
            for group, committed in offsets.items():
                topics = {tp.topic for tp in committed}
                partitions = [
                    TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
                ]
                ends = consumer.end_offsets(partitions)
                lag[group] = sum(
                    max(0, end - (committed[tp].offset if tp in committed else 0)) for tp, end in ends.items()
                )
            return lag
        finally:
            consumer.close()
            admin.close()

    def waiting_mails(self) -> int:
        rows = self.rows(
            "notification", "SELECT COUNT(*) AS n FROM notifications WHERE status IN ('pending', 'sending')"
        )
        return int(rows[0]["n"])

    def in_flight(self) -> list[str]:
        """What is still on its way (empty when settled)."""
        busy = [f"{svc} outbox: {n} unsent" for svc, n in self.unsent_outbox_rows().items() if n]
        busy += [f"consumer group {g}: lag {n}" for g, n in self.consumer_lag().items() if n]
        if mails := self.waiting_mails():
            busy.append(f"notification: {mails} mail(s) waiting")
        return busy

    def wait_settled(self, within: float, what: str = "the system to settle") -> float:
        """Poll until nothing is in flight; returns the seconds it took (fails after ``within``)."""
        began = time.monotonic()
        deadline = began + within
        last: list[str] = ["not checked yet"]
        while time.monotonic() < deadline:
            try:
                last = self.in_flight()
            except (KafkaError, SQLAlchemyError, OSError) as exc:  # still coming back: not settled yet
                last = [f"{type(exc).__name__}: {exc}"]
            if not last:
                return time.monotonic() - began
            time.sleep(0.5)
        raise AssertionError(f"timed out after {within:.0f} s waiting for {what}: {'; '.join(last)}")

    # -- the checks ------------------------------------------------------------------------

    def audit(
        self,
        bookings: Iterable[Booking],
        *,
        members: Collection[str] = (),
        since: datetime | None = None,
        cancelled: Collection[str] = (),
    ) -> Audit:
        """Each booking exists once everywhere; nothing of ``members`` exists that the client
        wasn't told about; no hold created ``since`` is left without its reservation."""
        result = Audit()
        bookings = list(bookings)
        ids = [b.reservation_id for b in bookings]
        known = set(ids)
        for rid, n in Counter(ids).items():
            if n > 1:
                result.add("doubled", f"the client was given reservation {rid} {n} times")

        reservations = {r["reservation_id"]: r for r in self.rows("room", "SELECT * FROM reservations")}
        holds = {h["reservation_id"]: h for h in self.rows("inventory", "SELECT * FROM holds")}
        history = Counter(
            (h["ref_id"], h["kind"]) for h in self.rows("member", "SELECT ref_id, kind FROM member_history")
        )
        mails = read_mailbox(self.stack.mailbox_path)

        def mails_about(rid: str, subject: str) -> int:
            """Distinct mails: a kill between the SMTP answer and "marked sent" re-sends the mail
            when its lease ends, with the same Message-ID (SMTP is at-least-once; a reader sees
            one mail). Two Message-IDs for one event would be a real double."""
            about = [m for m in mails if m["subject"].startswith(subject) and rid in m["body"]]
            ids = {_message_id(m) for m in about}
            if len(ids) < len(about):
                result.resent += len(about) - len(ids)
            return len(ids)

        for booking in bookings:
            rid = booking.reservation_id
            row = reservations.get(rid)
            if row is None:
                result.add("lost", f"reservation {rid} (201 to the client) is not in room's database")
                continue
            hold = holds.get(rid)
            if hold is None:
                result.add("lost", f"reservation {rid} has no hold in inventory")
            elif rid not in cancelled and hold["status"] != "confirmed":
                result.add("lost", f"the hold of {rid} is {hold['status']}, not confirmed")
            elif rid in cancelled and hold["status"] in ACTIVE_HOLDS:
                result.add("orphaned", f"the hold of cancelled {rid} is still {hold['status']}")
            self._count(result, f"history ReservationCreated of {rid}", history[(rid, "reservation_created")])
            self._count(
                result, f"'Reservation confirmed' mail of {rid}", mails_about(rid, "Reservation confirmed")
            )
            if rid in cancelled:
                self._count(
                    result,
                    f"'Reservation cancelled' mail of {rid}",
                    mails_about(rid, "Reservation cancelled"),
                )

        # Told "failed", yet booked: a reservation of our members the client never heard of.
        for rid, row in reservations.items():
            if row["member_id"] in members and rid not in known and row["status"] != "cancelled":
                result.add(
                    "orphaned",
                    f"reservation {rid} of {row['member_id']} exists, the client was told it failed",
                )

        # A hold no reservation stands behind blocks a night for nobody.
        for rid, hold in holds.items():
            if hold["status"] not in ACTIVE_HOLDS or (
                since is not None and _aware(hold["created_at"]) < since
            ):
                continue
            row = reservations.get(rid)
            if row is None or row["status"] == "cancelled":
                result.add("orphaned", f"hold {rid} ({hold['status']}) has no live reservation behind it")

        self._check_counts(result)
        return result

    def _count(self, result: Audit, what: str, n: int) -> None:
        if n == 0:
            result.add("lost", f"no {what}")
        elif n > 1:
            result.add("doubled", f"{n} x {what}")

    def _check_counts(self, result: Audit) -> None:
        """Per room and night, held/booked equal the holds that cover the night."""
        holds = self.rows(
            "inventory",
            "SELECT room_id, check_in, check_out, status FROM holds WHERE status IN ('held', 'confirmed')",
        )
        want: Counter[tuple[str, str, str]] = Counter()
        for h in holds:
            kind = "held" if h["status"] == "held" else "booked"
            for night in _nights(str(h["check_in"]), str(h["check_out"])):
                want[(h["room_id"], night, kind)] += 1
        for row in self.rows("inventory", "SELECT room_id, night, held, booked FROM availability"):
            for kind in ("held", "booked"):
                expected = want[(row["room_id"], str(row["night"]), kind)]
                if row[kind] != expected:
                    problem = f"{row['room_id']} {row['night']}: {kind}={row[kind]}, holds say {expected}"
                    result.add("doubled" if row[kind] > expected else "lost", problem)


def _nights(check_in: str, check_out: str) -> list[str]:
    first, last = date.fromisoformat(check_in[:10]), date.fromisoformat(check_out[:10])
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days)]


def _aware(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def poll(check: Callable[[], Any], what: str, within: float, interval: float = 0.2) -> Any:
    """``check()`` until truthy (returned) or ``within`` s pass (AssertionError naming ``what``)."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _message_id(mail: Mapping[str, Any]) -> str:
    """A mail's Message-ID (header names as sent; a mail without one counts on its own)."""
    for name, value in mail["headers"].items():
        if name.lower() == "message-id":
            return str(value)
    return f"no-message-id:{id(mail)}"
