"""Event handlers: contact copies from auth and member, one mail per mail-worthy event.

One consumer (group, thread) per topic: while a reservation event waits for its member's
contact copy (retrying), the UserRegistered that brings it is consumed by another thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from common.messaging import Envelope, Handler
from notification_service.domain import notifications as mails
from notification_service.service_layer.notifications import MailFor, Notifier


def user_handlers(notifier: Notifier) -> Mapping[str, Handler]:
    def user_registered(session: Session, envelope: Envelope, event: dict[str, Any]) -> None:
        notifier.user_registered(session, envelope.event_id, event)

    return {"UserRegistered": user_registered}


def member_handlers(notifier: Notifier) -> Mapping[str, Handler]:
    def member_updated(session: Session, envelope: Envelope, event: dict[str, Any]) -> None:
        notifier.member_updated(session, envelope.event_id, event)

    return {"MemberUpdated": member_updated}


def _mail(notifier: Notifier, member_field: str, mail_for: MailFor) -> Handler:
    def handle(session: Session, envelope: Envelope, event: dict[str, Any]) -> None:
        notifier.mail_member(
            session, envelope.event_id, envelope.event_type, event[member_field], event, mail_for
        )

    return handle


def reservation_handlers(notifier: Notifier) -> Mapping[str, Handler]:
    return {
        "ReservationCreated": _mail(notifier, "member_id", mails.reservation_confirmed),
        "ReservationCancelled": _mail(notifier, "member_id", mails.reservation_cancelled),
    }


def license_handlers(notifier: Notifier) -> Mapping[str, Handler]:
    return {"LicenseActivated": _mail(notifier, "user_id", mails.license_activated)}
