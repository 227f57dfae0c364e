"""Composition root of the member service: the runtime, its collaborators and the app."""

from fastapi import FastAPI

from common.clock import Clock, utc_now
from common.messaging import topic_for
from common.runtime import ServiceRuntime
from member_service.adapters.orm import messaging
from member_service.api import internal, members
from member_service.consumers import history_handlers, profile_handlers
from member_service.service_layer.members import MemberService
from member_service.settings import MemberSettings


def build_app(settings: MemberSettings, *, clock: Clock = utc_now) -> FastAPI:
    """Wire the member service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging)
    outbox = runtime.outbox()  # this service publishes MemberUpdated: the relay runs with the app
    service = MemberService(runtime.db, outbox, clock)
    # Separate consumer groups: a slow history event never holds up profile creation.
    runtime.add_consumer("profiles", [topic_for("UserRegistered")], profile_handlers(clock))
    runtime.add_consumer(
        "history",
        [topic_for("ReservationCreated"), topic_for("LicenseActivated")],
        history_handlers(),
    )
    return runtime.create_app(
        title="Member service",
        description="Member profiles, status, tier and history.",
        routers=[members.router, internal.router],
        members=service,
    )
