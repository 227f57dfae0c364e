"""Public routes: my notifications and the contact copy they are sent to; an admin's re-send."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from common.auth import UserPrincipal, current_user, require_role
from common.openapi import USER, problem_responses
from common.pagination import LIST_ERRORS, Paging, user_pages
from notification_service.api.schemas import ContactCopy, NotificationItem, NotificationList
from notification_service.service_layer.notifications import NotificationQueries, Resends

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


def _queries(request: Request) -> NotificationQueries:
    queries: NotificationQueries = request.app.state.notifications
    return queries


def _resends(request: Request) -> Resends:
    resends: Resends = request.app.state.resends
    return resends


Queries = Annotated[NotificationQueries, Depends(_queries)]
ResendsDep = Annotated[Resends, Depends(_resends)]
CurrentUser = Annotated[UserPrincipal, Depends(current_user)]
Admin = Annotated[UserPrincipal, Depends(require_role("admin"))]
Pages = Annotated[Paging, Depends(user_pages("notifications"))]

RESEND_ERRORS = problem_responses(
    401,
    described={
        403: "Not an admin",
        404: "No such notification",
        409: "The mail is pending or being sent: nothing to re-send yet",
    },
)


@router.get("", response_model=NotificationList, responses=LIST_ERRORS, openapi_extra=USER)
def my_notifications(user: CurrentUser, paging: Pages, queries: Queries) -> NotificationList:
    """The mails sent (or being sent) to me, newest first, one page at a time."""
    page = queries.for_member(user.user_id, paging.request)
    items = [NotificationItem.of(n) for n in page.items]
    return NotificationList(items=items, next_cursor=paging.cursor_after(page))


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


@router.post(
    "/{notification_id}/resend",
    status_code=202,
    response_model=NotificationItem,
    responses=RESEND_ERRORS,
    openapi_extra=USER,
)
def resend(notification_id: str, admin: Admin, resends: ResendsDep) -> NotificationItem:
    """Queue a sent or failed mail again (admin): it goes out with the same Message-ID, retried
    for a whole new horizon. 202: queued, not yet sent (watch its ``status``)."""
    return NotificationItem.of(resends.resend(notification_id, by=admin.user_id))
