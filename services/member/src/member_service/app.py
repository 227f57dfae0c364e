"""The member service's app factory."""

from fastapi import FastAPI

from member_service.bootstrap import build_app
from member_service.settings import MemberSettings


def create_app(settings: MemberSettings | None = None) -> FastAPI:
    """Build the member app from settings (read from the environment when not given)."""
    return build_app(settings or MemberSettings())
