"""Dependencies of the member routes: the use cases wired by the composition root."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.auth import UserPrincipal, current_user
from member_service.service_layer.members import MemberService


def _members(request: Request) -> MemberService:
    service: MemberService = request.app.state.members
    return service


Members = Annotated[MemberService, Depends(_members)]
CurrentUser = Annotated[UserPrincipal, Depends(current_user)]
