"""GET /api/v1/dashboard: the gateway's own endpoint, an aggregate that degrades gracefully."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from common.auth import UserPrincipal
from common.openapi import problem_responses
from gateway_service.api.guard import authenticated_user
from gateway_service.api.schemas import Dashboard
from gateway_service.service_layer.dashboard import build_dashboard

router = APIRouter(tags=["dashboard"])


@router.get(
    "/api/v1/dashboard",
    summary="My profile, reservations, licenses and notifications in one call",
    response_model=Dashboard,
    responses=problem_responses(401, 429),
)
async def dashboard(
    request: Request, user: Annotated[UserPrincipal, Depends(authenticated_user)]
) -> Dashboard:
    """Asks member, room, auth and notification in parallel, each with a short timeout.

    Always 200 for a valid user: parts that failed are null and named in ``missing``.
    """
    document = await build_dashboard(
        request.app.state.upstreams,
        f"Bearer {user.token}",
        request.app.state.settings.dashboard_part_timeout_s,
    )
    return Dashboard.model_validate(document)
