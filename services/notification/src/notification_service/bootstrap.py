"""Composition root of the notification service: the runtime, its collaborators and the app."""

from __future__ import annotations

from fastapi import FastAPI

from common.clock import Clock, utc_now
from common.messaging import topic_for
from common.runtime import ServiceRuntime
from notification_service.adapters.orm import messaging
from notification_service.adapters.smtp import SmtpMailer
from notification_service.api import notifications
from notification_service.consumers import (
    license_handlers,
    member_handlers,
    reservation_handlers,
    user_handlers,
)
from notification_service.domain.notifications import RetryPolicy
from notification_service.service_layer.notifications import NotificationQueries, Notifier, Resends
from notification_service.service_layer.sender import MailSender
from notification_service.settings import NotificationSettings


def build_app(settings: NotificationSettings, *, clock: Clock = utc_now) -> FastAPI:
    """Wire the notification service from its settings."""
    mailer = SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        settings.mail_from,
        timeout=settings.smtp_timeout_s,
        starttls=settings.smtp_starttls,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value(),
    )
    runtime = ServiceRuntime(settings, tables=messaging)
    retry = RetryPolicy(
        settings.mail_retry_horizon_s, settings.mail_backoff_base_s, settings.mail_backoff_cap_s
    )
    sender = MailSender(
        runtime.db,
        mailer,
        retry,
        lease_s=settings.mail_send_lease_s,
        service=runtime.service,
        poll_interval=settings.mail_poll_interval_s,
        clock=clock,
    )
    runtime.add_worker("mail", sender)
    notifier = Notifier(clock, on_queued=sender.wake)
    runtime.add_consumer("users", [topic_for("UserRegistered")], user_handlers(notifier))
    runtime.add_consumer("members", [topic_for("MemberUpdated")], member_handlers(notifier))
    runtime.add_consumer("reservations", [topic_for("ReservationCreated")], reservation_handlers(notifier))
    runtime.add_consumer("licenses", [topic_for("LicenseActivated")], license_handlers(notifier))
    return runtime.create_app(
        title="Notification service",
        description="Mail for every event, exactly once.",
        routers=[notifications.router],
        notifications=NotificationQueries(runtime.db),
        resends=Resends(runtime.db, clock, on_queued=sender.wake),
    )
