"""Composition root of the notification service: the runtime, its collaborators and the app."""

from fastapi import FastAPI

from common.runtime import ServiceRuntime
from notification_service.adapters.orm import messaging
from notification_service.settings import NotificationSettings


def build_app(settings: NotificationSettings) -> FastAPI:
    """Wire the notification service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging)
    return runtime.create_app(title="Notification service", description="Mail for every event, exactly once.")
