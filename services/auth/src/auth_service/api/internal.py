"""Internal routes: other services only, with a service token (never routed by the gateway)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends

from auth_service.api.deps import AccountsDep
from auth_service.api.schemas import UserResponse
from common.auth import require_service
from common.openapi import SERVICE, problem_responses

router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(require_service("member"))])


@router.get(
    "/users/{user_id}",
    responses=problem_responses(401, described={403: "The calling service may not", 404: "Unknown user"}),
    openapi_extra=SERVICE,
)
def get_user(user_id: str, accounts: AccountsDep) -> UserResponse:
    """A user's account data (404 if unknown)."""
    return UserResponse(**asdict(accounts.get(user_id)))
