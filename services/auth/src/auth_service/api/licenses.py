"""Licenses: issue (admin), activate a seat, list my activations."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, status

from auth_service.api.deps import LicensingDep
from auth_service.api.schemas import (
    ActivateRequest,
    ActivationList,
    ActivationResponse,
    LicenseRequest,
    LicenseResponse,
)
from common.auth import UserPrincipal, current_user, require_role
from common.openapi import USER, problem_responses
from common.pagination import LIST_ERRORS, Paging, user_pages

router = APIRouter(prefix="/api/v1/licenses", tags=["licenses"])

ISSUE_ERRORS = problem_responses(400, 401, 422, described={403: "Not an admin"})
ACTIVATE_ERRORS = problem_responses(
    400,
    401,
    422,
    described={404: "Unknown license key", 409: "The license is revoked, or no seat is left"},
)

User = Annotated[UserPrincipal, Depends(current_user)]
Admin = Annotated[UserPrincipal, Depends(require_role("admin"))]
Pages = Annotated[Paging, Depends(user_pages("licenses"))]


@router.post("", status_code=status.HTTP_201_CREATED, responses=ISSUE_ERRORS, openapi_extra=USER)
def issue_license(body: LicenseRequest, admin: Admin, licensing: LicensingDep) -> LicenseResponse:
    """Issue a license with ``seats`` seats; the answer is the only place its key is shown."""
    issued = licensing.issue(body.product, body.seats, created_by=admin.user_id)
    return LicenseResponse(**asdict(issued))


@router.post("/activate", responses=ACTIVATE_ERRORS, openapi_extra=USER)
def activate(body: ActivateRequest, user: User, licensing: LicensingDep) -> ActivationResponse:
    """Take a seat for a machine (the same machine again: its existing activation)."""
    activation = licensing.activate(user.user_id, body.license_key, body.machine_id)
    return ActivationResponse(**asdict(activation))


@router.get("", responses=LIST_ERRORS, openapi_extra=USER)
def my_activations(user: User, paging: Pages, licensing: LicensingDep) -> ActivationList:
    """The activations I made, oldest first, one page at a time."""
    page = licensing.activations_of(user.user_id, paging.request)
    items = [ActivationResponse(**asdict(a)) for a in page.items]
    return ActivationList(items=items, next_cursor=paging.cursor_after(page))
