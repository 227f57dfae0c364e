"""The room service's app factory."""

from fastapi import FastAPI

from room_service.bootstrap import build_app
from room_service.settings import RoomSettings


def create_app(settings: RoomSettings | None = None) -> FastAPI:
    """Build the room app from settings (read from the environment when not given)."""
    return build_app(settings or RoomSettings())
