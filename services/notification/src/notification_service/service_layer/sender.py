"""The mail sender: a background thread that delivers queued notifications, each at most once.

For each due notification:
1. **claim** it — ``pending`` → ``sending`` with a lease (``next_attempt_at`` = now + lease),
   attempts + 1 — and COMMIT;
2. talk to SMTP, outside any transaction (never hold SQLite's write lock on the network);
3. record the outcome: ``sent``; or back to ``pending`` with a later ``next_attempt_at``
   (transient failure, horizon not spent); or ``failed`` (refused for good, or horizon spent).

Claim-before-send keeps two senders from mailing at once. A crash between 1 and 3 leaves the
notification ``sending``; once its lease expires it is claimed and sent again (at-least-once:
nothing is lost). If the first try had reached the server, the receiver gets a duplicate with
the same Message-ID, recognisable as such. The claim's attempt number fences a slow sender: its
late outcome is not recorded over a newer claim's. A ``failed`` notification is the mail's dead
letter: logged at ERROR with its error, counted in ``mails_total{outcome="failed"}``; an admin
can re-send it (``POST /api/v1/notifications/{id}/resend``).
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any, Protocol

from prometheus_client import Counter

from common.clock import Clock, utc_now
from common.db import Database
from common.tracing import SpanKind, extract, span
from common.workers import BackgroundThread
from notification_service.adapters.repository import NotificationRepository
from notification_service.domain.notifications import (
    FAILED,
    PENDING,
    SENDING,
    SENT,
    Notification,
    RetryPolicy,
)

log = logging.getLogger(__name__)

MAILS = Counter(
    "mails_total",
    "Mail delivery attempts by outcome (sent, retry, failed, lease_expired)",
    ["service", "outcome"],
)


class Mailer(Protocol):
    def send(self, notification: Notification) -> None:
        """Deliver, or raise; an exception with ``permanent = True`` means don't retry."""

    def close(self) -> None:
        """Release the connection kept between mails (the sender calls it when it stops)."""


class MailSender(BackgroundThread):
    """Delivers due notifications from a background thread (``wake()`` after each new one)."""

    def __init__(
        self,
        db: Database,
        mailer: Mailer,
        retry: RetryPolicy,
        *,
        lease_s: float = 300.0,
        service: str = "notification",
        poll_interval: float = 1.0,
        batch_size: int = 50,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__("mail-sender")
        self._db = db
        self._mailer = mailer
        self._retry = retry
        self._lease = timedelta(seconds=lease_s)
        self._service = service
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._clock = clock
        self.last_error: str | None = None
        self.counts: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------

    # start(), stop(), wake() (look for due mail now) and running: BackgroundThread.

    def status(self) -> dict[str, Any]:
        """For the readiness report (no I/O: figures from the last round)."""
        return {"running": self.running, "error": self.last_error, **self.counts}

    # -- the work --------------------------------------------------------------------------

    def run_once(self) -> int:
        """Attempt every notification that is due now; returns how many were attempted."""
        attempted = 0
        while not self._stop.is_set():
            with self._db.read() as session:
                due = NotificationRepository(session).due(self._clock(), self._batch_size)
            for notification_id in due:
                if self._stop.is_set():
                    break
                attempted += self._deliver(notification_id)
            if len(due) < self._batch_size:
                break
        with self._db.read() as session:
            self.counts = NotificationRepository(session).count_by_status()
        return attempted

    def _deliver(self, notification_id: str) -> int:
        now = self._clock()
        with self._db.transaction() as session:
            repository = NotificationRepository(session)
            before = repository.get(notification_id)
            notification = repository.claim(notification_id, now, now + self._lease)
        if notification is None:
            return 0  # another sender got it
        if before is not None and before.status == SENDING:
            MAILS.labels(self._service, "lease_expired").inc()
            log.warning(
                "mail %s (%s) was being sent when its sender stopped (lease expired); sending it "
                "again with the same Message-ID %s",
                notification.notification_id, notification.event_type, notification.message_id,
            )  # fmt: skip
        # The send is a span of the event's trace (reservation -> Kafka -> consumer -> SMTP).
        parent = extract({"traceparent": notification.traceparent} if notification.traceparent else {})
        attributes = {"notification.id": notification.notification_id, "event.type": notification.event_type}
        with span("smtp send", kind=SpanKind.CLIENT, context=parent, attributes=attributes):
            try:
                self._mailer.send(notification)
            except Exception as exc:
                self._failed(notification, exc)
            else:
                if self._finish(notification, SENT, sent_at=self._clock()):
                    MAILS.labels(self._service, "sent").inc()
                    log.info("mail %s (%s) sent", notification.notification_id, notification.event_type)
        return 1

    def _failed(self, notification: Notification, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        retry_at = None
        if not getattr(exc, "permanent", False):
            # Jitter spreads the retries of many mails that failed together (the server was down).
            jitter = random.random()  # noqa: S311 - not crypto
            retry_at = self._retry.next_attempt(
                notification.attempts, notification.horizon_start, self._clock(), jitter
            )
        if retry_at is None:
            if not self._finish(notification, FAILED, error=error):
                return
            MAILS.labels(self._service, "failed").inc()
            log.error(
                "mail %s for event %s (%s) failed after %d attempt(s), not retried: %s",
                notification.notification_id, notification.event_id, notification.event_type,
                notification.attempts, error,
            )  # fmt: skip
            return
        if not self._finish(notification, PENDING, next_attempt_at=retry_at, error=error):
            return
        MAILS.labels(self._service, "retry").inc()
        log.warning(
            "mail %s (%s) attempt %d failed, retrying at %s: %s",
            notification.notification_id, notification.event_type, notification.attempts,
            retry_at.isoformat(timespec="seconds"), error,
        )  # fmt: skip

    def _finish(self, notification: Notification, status: str, **outcome: Any) -> bool:
        # If recording the outcome fails (DB down), the row stays "sending" and is sent again
        # when its lease expires (a duplicate, with the same Message-ID: never a lost mail).
        with self._db.transaction() as session:
            recorded = NotificationRepository(session).finish(notification, status, **outcome)
        if not recorded:
            log.warning(
                "mail %s: attempt %d outlived its lease and was claimed again; its outcome (%s) "
                "is not recorded",
                notification.notification_id, notification.attempts, status,
            )  # fmt: skip
        return recorded

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._mailer.close()

    def _loop(self) -> None:
        self._warn_about_interrupted_sends()
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()  # before reading: a commit during the round wakes the next one
            try:
                self.run_once()
            except Exception as exc:  # the DB is locked or down: wait and try again
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if failures == 1:
                    log.warning("mail sender failed, retrying: %s", self.last_error)
                self._stop.wait(min(30.0, self._poll_interval * 2**failures))
                continue
            failures, self.last_error = 0, None
            self._wake.wait(self._poll_interval)

    def _warn_about_interrupted_sends(self) -> None:
        try:
            with self._db.read() as session:
                interrupted = NotificationRepository(session).count_by_status().get(SENDING, 0)
        except Exception as exc:
            log.debug("cannot count interrupted sends yet: %s", exc)
            return
        if interrupted:
            log.warning(
                "%d notification(s) were being sent when the service stopped; each is sent again "
                "when its lease (%.0f s) expires, with the same Message-ID (a duplicate at most).",
                interrupted, self._lease.total_seconds(),
            )  # fmt: skip
