"""Notification service settings: environment variables prefixed `NOTIFICATION_`."""

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "notification"

    port: int = 8005

    # Where mail goes (the stack runs an SMTP sink on 1025; compose runs Mailpit).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    smtp_starttls: bool = False  # True for a real mail server; the dev sinks speak plain SMTP
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    mail_from: str = "Reservations <no-reply@reservations.example>"

    # A queued mail is retried with exponential backoff, then marked "failed" (its dead letter).
    # Defaults: 8 attempts, 1 s doubling to 30 s (jittered): about 45-90 s of patience.
    mail_max_attempts: int = Field(default=8, ge=1)
    mail_backoff_base_s: float = Field(default=1.0, gt=0)
    mail_backoff_cap_s: float = Field(default=30.0, gt=0)
    mail_poll_interval_s: float = Field(default=1.0, gt=0)

    # An event can arrive before the UserRegistered that carries the member's address (they
    # travel on different topics): the handler fails and the consumer retries. 12 attempts
    # with the consumer's backoff (0.2 s doubling, capped at 5 s, jittered) wait ~20-35 s
    # before the event is dead-lettered (and can be re-driven from the DLQ).
    consumer_max_attempts: int = Field(default=12, ge=1)
