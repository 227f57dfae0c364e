"""The gateway's own response bodies (everything else is the services' own)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from gateway_service.domain.dashboard import LIST_LIMIT, PartName


class Dashboard(BaseModel):
    """What the user has, from four services; a part that could not be had is null and missing."""

    profile: dict[str, Any] | None = Field(
        description="GET /api/v1/members/me; null when missing or not created yet (then not in missing)"
    )
    reservations: list[dict[str, Any]] | None = Field(
        description=f"the first page (newest {LIST_LIMIT}) of GET /api/v1/reservations"
    )
    licenses: list[dict[str, Any]] | None = Field(
        description=f"the first page (oldest {LIST_LIMIT}) of GET /api/v1/licenses"
    )
    notifications: list[dict[str, Any]] | None = Field(
        description=f"the first page (newest {LIST_LIMIT}) of GET /api/v1/notifications"
    )
    degraded: bool = Field(description="true when some part is missing")
    missing: list[PartName] = Field(description="the parts whose service failed or was too slow")
