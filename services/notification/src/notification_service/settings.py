"""Notification service settings: environment variables prefixed `NOTIFICATION_`."""

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_", extra="ignore", validate_default=True)

    service_name: ClassVar[str] = "notification"

    port: int = 8005

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
