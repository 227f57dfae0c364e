"""Internal routes for other services (service token required, allow-listed callers)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from common.auth import require_service
from common.errors import NotFound
from common.openapi import SERVICE, problem_responses
from member_service.api.deps import Members
from member_service.api.schemas import MemberValidity

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get(
    "/members/{member_id}",
    response_model=MemberValidity,
    dependencies=[Depends(require_service("room", "auth"))],
    responses=problem_responses(
        401,
        described={
            403: "The calling service may not",
            404: "Unknown member (or profile not created yet)",
        },
    ),
    openapi_extra=SERVICE,
)
def member_validity(member_id: str, members: Members) -> MemberValidity:
    """Is this member allowed to act (room asks before reserving)?"""
    member = members.find(member_id)
    if member is None:
        raise NotFound(f"member {member_id} unknown (yet)")
    return MemberValidity(
        member_id=member.member_id, status=member.status, tier=member.tier, active=member.active
    )
