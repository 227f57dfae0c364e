"""The gateway service's app factory."""

from fastapi import FastAPI

from gateway_service.bootstrap import build_app
from gateway_service.settings import GatewaySettings


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway app from settings (read from the environment when not given)."""
    return build_app(settings or GatewaySettings())
