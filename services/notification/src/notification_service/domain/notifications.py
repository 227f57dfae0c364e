"""Notifications: which mail each event deserves, and how a failing mail is retried.

Pure rules, no I/O: the service layer records notifications, the sender delivers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# A notification's life: recorded "pending" in the same transaction as the event's dedup row;
# the sender claims it ("sending", committed, with a lease) BEFORE talking to SMTP, then marks
# it "sent" — or back to "pending" for a retry, or "failed" when the server refused it for good
# or the retry horizon is spent. A "sending" row whose lease expired (the sender died mid-send)
# is claimed again: at-least-once, and the stable Message-ID makes a duplicate recognisable.
# An admin may put a "sent" or "failed" mail back to "pending" (re-send).
PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"


@dataclass(frozen=True)
class Contact:
    """The member's contact details as this service last heard them (event-carried state)."""

    member_id: str
    email: str
    display_name: str | None
    version: int

    @property
    def greeting_name(self) -> str:
        return self.display_name or self.email.partition("@")[0] or "there"

    def superseded_by(self, incoming_version: int) -> bool:
        """Only a newer version replaces this copy: a late, older event never wins."""
        return incoming_version > self.version


# UserRegistered carries the state member stores as version 1; MemberUpdated carries 2, 3, ...
REGISTERED_VERSION = 1


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str


@dataclass(frozen=True)
class Notification:
    """One mail for one event (``event_id`` is unique: one event, one notification)."""

    notification_id: str
    event_id: str
    event_type: str
    member_id: str
    recipient: str
    subject: str
    body: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None = None
    queued_at: datetime | None = None  # when (re-)queued: the retry horizon counts from here
    traceparent: str | None = None  # the trace of the event that queued it: its send joins it

    @property
    def message_id(self) -> str:
        """The Message-ID of every attempt (and re-send): one per notification, so a receiver
        can tell a duplicate from a second mail."""
        return f"<{self.event_id}@notification.reservations>"

    @property
    def horizon_start(self) -> datetime:
        return self.queued_at or self.created_at

    def resendable(self) -> bool:
        """Only a mail that is done with (delivered or given up) can be queued again."""
        return self.status in (SENT, FAILED)


def welcome(contact: Contact) -> Mail:
    return Mail(
        subject="Welcome to Reservations",
        body=(
            f"Hello {contact.greeting_name},\n\n"
            "your account is ready. You can now reserve rooms and activate your licenses.\n"
        ),
    )


def _stay(event: Mapping[str, Any]) -> str:
    return f"room {event['room_id']}, {event['check_in'].isoformat()} to {event['check_out'].isoformat()}"


def reservation_confirmed(contact: Contact, event: Mapping[str, Any]) -> Mail:
    nights = event["nights"]
    return Mail(
        subject=f"Reservation confirmed: {_stay(event)}",
        body=(
            f"Hello {contact.greeting_name},\n\n"
            f"your reservation {event['reservation_id']} is confirmed: {_stay(event)} "
            f"({nights} night{'s' if nights != 1 else ''}).\n"
        ),
    )


def reservation_cancelled(contact: Contact, event: Mapping[str, Any]) -> Mail:
    return Mail(
        subject=f"Reservation cancelled: {_stay(event)}",
        body=(
            f"Hello {contact.greeting_name},\n\n"
            f"your reservation {event['reservation_id']} ({_stay(event)}) is cancelled.\n"
        ),
    )


def license_activated(contact: Contact, event: Mapping[str, Any]) -> Mail:
    # The event carries no license key, and neither does the mail.
    return Mail(
        subject=f"License activated: {event['product']} on {event['machine_id']}",
        body=(
            f"Hello {contact.greeting_name},\n\n"
            f"a seat of your {event['product']} license is now active on machine "
            f"{event['machine_id']} (activation {event['activation_id']}).\n"
        ),
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How a mail the server can't take now is retried: like an MTA's queue.

    Exponential backoff (``base_s`` doubling, capped at ``cap_s``) for as long as the retry
    ``horizon_s`` lasts, counted from when the mail was queued (hours by default: an SMTP
    outage of minutes loses nothing); the last try lands on the horizon itself, then "failed".
    """

    horizon_s: float
    base_s: float
    cap_s: float

    def next_attempt(
        self, attempts: int, queued_at: datetime, now: datetime, jitter: float = 0.0
    ) -> datetime | None:
        """When to try again after ``attempts`` failed tries; None when the horizon is spent.

        ``jitter`` (0..1, random in the sender) takes up to half off the delay, so mails that
        failed together (the server was down) don't all come back in the same second.
        """
        give_up_at = queued_at + timedelta(seconds=self.horizon_s)
        if now >= give_up_at:
            return None
        # The exponent is bounded: 2**1100 would overflow a float long before the cap matters.
        delay = min(self.cap_s, self.base_s * 2 ** min(max(attempts - 1, 0), 60))
        delay *= 1 - 0.5 * min(max(jitter, 0.0), 1.0)
        return min(now + timedelta(seconds=delay), give_up_at)
