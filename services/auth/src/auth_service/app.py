"""The auth service's app factory."""

from fastapi import FastAPI

from auth_service.bootstrap import build_app
from auth_service.settings import AuthSettings


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    """Build the auth app from settings (read from the environment when not given)."""
    return build_app(settings or AuthSettings())
