"""The notification service's app factory."""

from fastapi import FastAPI

from notification_service.bootstrap import build_app
from notification_service.settings import NotificationSettings


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    """Build the notification app from settings (read from the environment when not given)."""
    return build_app(settings or NotificationSettings())
