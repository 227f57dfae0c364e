"""``/admin/faults``: set, list and turn off a service's fault switches (every service has it).

Callers: the gateway (for admins: ``/api/v1/admin/faults/{service}``) and ``ops`` (tools,
suites), with a service token, or the shared secret in that mode; nobody else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from common.auth import require_service
from common.errors import NotFound
from common.faults.spec import NAME_PATTERN, FaultList, FaultSpec, FaultSwitch
from common.faults.switchboard import Switchboard
from common.openapi import SERVICE, problem_responses

ADMIN_CALLERS = ("gateway", "ops")

SwitchName = Annotated[str, Path(pattern=NAME_PATTERN, description="The switch's name", examples=["slow"])]

_AUTH = problem_responses(401, 403)


def _board(request: Request) -> Switchboard:
    board: Switchboard = request.app.state.faults
    return board


Board = Annotated[Switchboard, Depends(_board)]


def faults_router() -> APIRouter:
    """The admin API of the app's switchboard (``app.state.faults``)."""
    router = APIRouter(
        prefix="/admin/faults",
        tags=["faults"],
        dependencies=[Depends(require_service(*ADMIN_CALLERS))],
    )

    @router.get("", summary="The fault switches set", responses=_AUTH, openapi_extra=SERVICE)
    async def list_faults(board: Board) -> FaultList:
        return FaultList(faults=board.list())

    @router.get(
        "/{name}",
        summary="One fault switch",
        responses=problem_responses(401, 403, 422, described={404: "No such switch (or it expired)"}),
        openapi_extra=SERVICE,
    )
    async def get_fault(name: SwitchName, board: Board) -> FaultSwitch:
        switch = board.get(name)
        if switch is None:
            raise NotFound(f"no fault switch {name!r}")
        return switch

    @router.put(
        "/{name}",
        summary="Set (or replace) a fault switch; it turns itself off after ttl_s",
        responses=problem_responses(400, 401, 403, 422),
        openapi_extra=SERVICE,
    )
    async def set_fault(name: SwitchName, spec: FaultSpec, board: Board) -> FaultSwitch:
        return board.set(name, spec)

    @router.delete(
        "/{name}",
        summary="Turn a fault switch off (idempotent)",
        status_code=204,
        responses=problem_responses(401, 403, 422),
        openapi_extra=SERVICE,
    )
    async def delete_fault(name: SwitchName, board: Board) -> Response:
        board.delete(name)
        return Response(status_code=204)

    @router.delete(
        "", summary="Turn every fault switch off", status_code=204, responses=_AUTH, openapi_extra=SERVICE
    )
    async def clear_faults(board: Board) -> Response:
        board.clear()
        return Response(status_code=204)

    return router
