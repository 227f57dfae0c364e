"""Notification service settings: environment variables prefixed `NOTIFICATION_`."""

from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
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

    # Like an MTA's queue: a mail the server can't take now is retried with exponential backoff
    # (1 s doubling, capped at 10 min, jittered) until the horizon, counted from when it was
    # queued, is spent (4 h); then it is "failed" (its dead letter). A permanent refusal (5xx)
    # fails it at once. Tests may scale these down; the code has no other limit.
    mail_retry_horizon_s: float = Field(default=4 * 3600.0, gt=0)
    mail_backoff_base_s: float = Field(default=1.0, gt=0)
    mail_backoff_cap_s: float = Field(default=600.0, gt=0)
    mail_poll_interval_s: float = Field(default=1.0, gt=0)
    # A claimed mail ("sending") whose sender died before recording the outcome is sent again
    # once this lease expires. A send is abandoned after 3 x smtp_timeout_s, so the lease must
    # be longer, or a slow but live send would be duplicated.
    mail_send_lease_s: float = Field(default=300.0, gt=0)

    # An event can arrive before the UserRegistered that carries the member's address (they
    # travel on different topics): the handler fails and the consumer retries. 12 attempts
    # with the consumer's backoff (0.2 s doubling, capped at 5 s, jittered) wait ~20-35 s
    # before the event is dead-lettered (and can be re-driven from the DLQ).
    consumer_max_attempts: int = Field(default=12, ge=1)

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Self:
        if self.mail_send_lease_s <= 3 * self.smtp_timeout_s:
            raise ValueError("mail_send_lease_s must be longer than a whole send (3 x smtp_timeout_s)")
        return self
