"""Public routes: my profile and history; admins suspend members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from common.auth import require_role
from common.openapi import USER, problem_responses
from common.pagination import LIST_ERRORS, Paging, user_pages
from member_service.api.deps import CurrentUser, Members
from member_service.api.schemas import History, HistoryItem, Profile, ProfileUpdate

router = APIRouter(prefix="/api/v1", tags=["members"])
HistoryPages = Annotated[Paging, Depends(user_pages("history"))]

_NO_PROFILE_YET = "No profile yet (created shortly after sign-up)"
MY_PROFILE_ERRORS = problem_responses(401, described={404: _NO_PROFILE_YET})
UPDATE_ERRORS = problem_responses(400, 401, 422, described={404: _NO_PROFILE_YET})
HISTORY_ERRORS = {**LIST_ERRORS, **problem_responses(described={404: _NO_PROFILE_YET})}
SUSPEND_ERRORS = problem_responses(401, described={403: "Not an admin", 404: "Unknown member"})


@router.get("/members/me", response_model=Profile, responses=MY_PROFILE_ERRORS, openapi_extra=USER)
def my_profile(user: CurrentUser, members: Members) -> Profile:
    """My profile."""
    return Profile.of(members.profile(user.user_id))


@router.patch("/members/me", response_model=Profile, responses=UPDATE_ERRORS, openapi_extra=USER)
def update_my_profile(body: ProfileUpdate, user: CurrentUser, members: Members) -> Profile:
    """Change my profile; a real change bumps ``version`` and publishes ``MemberUpdated``."""
    if body.display_name is None:  # nothing asked: nothing changes
        return Profile.of(members.profile(user.user_id))
    return Profile.of(members.rename(user.user_id, body.display_name))


@router.get("/members/me/history", response_model=History, responses=HISTORY_ERRORS, openapi_extra=USER)
def my_history(user: CurrentUser, paging: HistoryPages, members: Members) -> History:
    """What I did elsewhere (reservations, license activations), newest first, one page at a time."""
    page = members.history(user.user_id, paging.request)
    return History(
        items=[HistoryItem.of(entry) for entry in page.items], next_cursor=paging.cursor_after(page)
    )


@router.post(
    "/admin/members/{member_id}/suspend",
    response_model=Profile,
    dependencies=[Depends(require_role("admin"))],
    responses=SUSPEND_ERRORS,
    openapi_extra=USER,
)
def suspend_member(member_id: str, members: Members) -> Profile:
    """Suspend a member (admin). Suspending a suspended member changes nothing: 200, same version."""
    return Profile.of(members.suspend(member_id))
