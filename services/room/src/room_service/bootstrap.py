"""Composition root of the room service: the runtime, its collaborators and the app."""

from fastapi import FastAPI

from common.runtime import ServiceRuntime
from room_service.adapters.orm import messaging
from room_service.settings import RoomSettings


def build_app(settings: RoomSettings) -> FastAPI:
    """Wire the room service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging)
    runtime.outbox()  # this service publishes events: the relay runs with the app
    runtime.client("member", settings.member_url)
    runtime.client("inventory", settings.inventory_url)
    return runtime.create_app(
        title="Room service",
        description="Rooms and reservations: synchronous checks, asynchronous side effects.",
    )
