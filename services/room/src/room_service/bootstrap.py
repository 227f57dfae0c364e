"""Composition root of the room service: the runtime, its collaborators and the app."""

from fastapi import FastAPI

from common.idempotency import IdempotencyStore
from common.runtime import ServiceRuntime
from room_service.adapters.clients import InventoryHolds, MemberDirectory
from room_service.adapters.orm import idempotency_keys, messaging
from room_service.api import reservations, rooms
from room_service.api.schemas import present_reservation
from room_service.service_layer.reservations import Reservations
from room_service.service_layer.rooms import RoomCatalog
from room_service.settings import RoomSettings


def build_app(settings: RoomSettings) -> FastAPI:
    """Wire the room service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging)
    outbox = runtime.outbox()  # this service publishes events: the relay runs with the app
    member = runtime.client("member", settings.member_url, timeout=settings.member_timeout_s)
    inventory = runtime.client("inventory", settings.inventory_url, timeout=settings.inventory_timeout_s)
    return runtime.create_app(
        title="Room service",
        description="Rooms and reservations: synchronous checks, asynchronous side effects.",
        routers=[rooms.router, reservations.router],
        rooms=RoomCatalog(runtime.db),
        reservations=Reservations(
            runtime.db,
            outbox,
            IdempotencyStore(idempotency_keys),
            MemberDirectory(member),
            InventoryHolds(inventory, release_timeout_s=settings.release_hold_timeout_s),
            present_reservation,
            member_retry_after_s=settings.member_profile_retry_after_s,
        ),
    )
