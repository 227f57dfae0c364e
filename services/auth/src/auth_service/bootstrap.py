"""Composition root of the auth service: the runtime, its collaborators and the app."""

from fastapi import FastAPI

from auth_service.adapters.orm import messaging
from auth_service.settings import AuthSettings
from common.runtime import ServiceRuntime


def build_app(settings: AuthSettings) -> FastAPI:
    """Wire the auth service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging)
    runtime.outbox()  # this service publishes events: the relay runs with the app
    runtime.client("member", settings.member_url)
    return runtime.create_app(title="Auth service", description="Users, login, JWKS and software licenses.")
