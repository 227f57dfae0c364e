"""Composition root of the member service: the runtime, its collaborators and the app."""

from fastapi import FastAPI

from common.runtime import ServiceRuntime
from member_service.adapters.orm import messaging
from member_service.settings import MemberSettings


def build_app(settings: MemberSettings) -> FastAPI:
    """Wire the member service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging)
    runtime.outbox()  # this service publishes events: the relay runs with the app
    return runtime.create_app(
        title="Member service", description="Member profiles, status, tier and history."
    )
