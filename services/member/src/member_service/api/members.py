"""Public routes: my profile and history; admins suspend members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from common.auth import require_role
from member_service.api.deps import CurrentUser, Members
from member_service.api.schemas import History, HistoryItem, Profile, ProfileUpdate

router = APIRouter(prefix="/api/v1", tags=["members"])

_NOT_YET: dict[int | str, dict[str, Any]] = {
    404: {"description": "No profile yet (created shortly after sign-up)"}
}


@router.get("/members/me", response_model=Profile, responses=_NOT_YET)
def my_profile(user: CurrentUser, members: Members) -> Profile:
    """My profile."""
    return Profile.of(members.profile(user.user_id))


@router.patch("/members/me", response_model=Profile, responses=_NOT_YET)
def update_my_profile(body: ProfileUpdate, user: CurrentUser, members: Members) -> Profile:
    """Change my profile; a real change bumps ``version`` and publishes ``MemberUpdated``."""
    if body.display_name is None:  # nothing asked: nothing changes
        return Profile.of(members.profile(user.user_id))
    return Profile.of(members.rename(user.user_id, body.display_name))


@router.get("/members/me/history", response_model=History, responses=_NOT_YET)
def my_history(user: CurrentUser, members: Members) -> History:
    """What I did elsewhere (reservations, license activations), newest first."""
    return History(items=[HistoryItem.of(entry) for entry in members.history(user.user_id)])


@router.post(
    "/admin/members/{member_id}/suspend",
    response_model=Profile,
    dependencies=[Depends(require_role("admin"))],
    responses={403: {"description": "Not an admin"}, 404: {"description": "Unknown member"}},
)
def suspend_member(member_id: str, members: Members) -> Profile:
    """Suspend a member (admin). Suspending a suspended member changes nothing: 200, same version."""
    return Profile.of(members.suspend(member_id))
