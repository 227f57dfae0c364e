"""Public routes: my notifications and the contact copy they are sent to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from common.auth import UserPrincipal, current_user
from common.openapi import USER, problem_responses
from notification_service.api.schemas import ContactCopy, NotificationItem, NotificationList
from notification_service.service_layer.notifications import NotificationQueries

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


def _queries(request: Request) -> NotificationQueries:
    queries: NotificationQueries = request.app.state.notifications
    return queries


Queries = Annotated[NotificationQueries, Depends(_queries)]
CurrentUser = Annotated[UserPrincipal, Depends(current_user)]


@router.get("", response_model=NotificationList, responses=problem_responses(401), openapi_extra=USER)
def my_notifications(user: CurrentUser, queries: Queries) -> NotificationList:
    """The mails sent (or being sent) to me, newest first."""
    return NotificationList(items=[NotificationItem.of(n) for n in queries.for_member(user.user_id)])


@router.get(
    "/contact",
    response_model=ContactCopy,
    responses=problem_responses(
        401, described={404: "No contact copy yet (it comes with the sign-up event)"}
    ),
    openapi_extra=USER,
)
def my_contact(user: CurrentUser, queries: Queries) -> ContactCopy:
    """The contact details this service holds for me (from events; the newest version wins)."""
    return ContactCopy.of(queries.contact(user.user_id))
