"""Composition root of the gateway service: the runtime, its collaborators and the app."""

from fastapi import FastAPI

from common.runtime import ServiceRuntime
from gateway_service.adapters.orm import messaging
from gateway_service.settings import GatewaySettings


def build_app(settings: GatewaySettings) -> FastAPI:
    """Wire the gateway service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging, uses_kafka=False)
    runtime.client("auth", settings.auth_url)
    runtime.client("member", settings.member_url)
    runtime.client("room", settings.room_url)
    runtime.client("inventory", settings.inventory_url)
    runtime.client("notification", settings.notification_url)
    return runtime.create_app(
        title="Gateway service",
        description="The public door: routes /api/v1 to the owning service, checks tokens, limits rates.",
    )
