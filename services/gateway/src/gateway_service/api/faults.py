"""``/api/v1/admin/faults/{service}[/{name}]``: fault switches of any service, for admins only.

The gateway's own switches are set here, on its switchboard; another service's are passed to its
``/admin/faults`` with the gateway's service token (that route admits the gateway and ops only).
A bad switch is refused here already (422), so the documented body is the one that arrives.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from common.auth import UserPrincipal
from common.errors import Forbidden, NotFound
from common.faults import FaultList, FaultSpec, FaultSwitch, Switchboard
from common.faults.spec import NAME_PATTERN
from common.http import ServiceClient
from common.openapi import problem_responses
from gateway_service.api.guard import authenticated_user
from gateway_service.domain.routes import UPSTREAMS

SERVICES = ("gateway", *UPSTREAMS)
ADMIN_ROLE = "admin"


async def admin_user(user: Annotated[UserPrincipal, Depends(authenticated_user)]) -> UserPrincipal:
    """A valid access token (else 401) of a user with the admin role (else 403)."""
    if ADMIN_ROLE not in user.roles:
        raise Forbidden(f"requires the {ADMIN_ROLE!r} role")
    return user


router = APIRouter(prefix="/api/v1/admin/faults", tags=["faults"], dependencies=[Depends(admin_user)])

Service = Annotated[str, Path(description=f"One of: {', '.join(SERVICES)}", examples=["member"])]
SwitchName = Annotated[str, Path(pattern=NAME_PATTERN, description="The switch's name", examples=["slow"])]

_ERRORS = problem_responses(
    401,
    403,
    429,
    described={
        404: "No such service (or no such switch)",
        503: "The service is unavailable (see Retry-After)",
        504: "The service did not answer within the deadline",
    },
)
_WITH_BODY = _ERRORS | problem_responses(422)


async def _at(request: Request, service: str, method: str, path: str, body: Any = None) -> Response | None:
    """Pass the call to ``service``'s admin API and its answer back; None for the gateway's own."""
    if service not in SERVICES:
        raise NotFound(f"no service {service!r}; one of: {', '.join(SERVICES)}")
    if service == "gateway":
        return None
    client: ServiceClient = request.app.state.upstreams[service]
    answer = await client.request(method, f"/admin/faults{path}", json=body)
    return Response(answer.content, answer.status_code, media_type=answer.headers.get("content-type"))


def _board(request: Request) -> Switchboard:
    board: Switchboard = request.app.state.faults
    return board


@router.get("/{service}", summary="A service's fault switches", response_model=FaultList, responses=_ERRORS)
async def list_faults(request: Request, service: Service) -> Response | FaultList:
    passed = await _at(request, service, "GET", "")
    if passed is not None:
        return passed
    return FaultList(faults=_board(request).list())


@router.delete(
    "/{service}", summary="Turn all of a service's switches off", status_code=204, responses=_ERRORS
)
async def clear_faults(request: Request, service: Service) -> Response:
    passed = await _at(request, service, "DELETE", "")
    if passed is not None:
        return passed
    _board(request).clear()
    return Response(status_code=204)


@router.put(
    "/{service}/{name}",
    summary="Set (or replace) a fault switch of a service; it turns itself off after ttl_s",
    response_model=FaultSwitch,
    responses=_WITH_BODY | problem_responses(400),
)
async def set_fault(
    request: Request, service: Service, name: SwitchName, spec: FaultSpec
) -> Response | FaultSwitch:
    body = spec.model_dump(mode="json", exclude_none=True)
    passed = await _at(request, service, "PUT", f"/{name}", body)
    if passed is not None:
        return passed
    return _board(request).set(name, spec)


@router.get(
    "/{service}/{name}",
    summary="One fault switch of a service",
    response_model=FaultSwitch,
    responses=_WITH_BODY,
)
async def get_fault(request: Request, service: Service, name: SwitchName) -> Response | FaultSwitch:
    passed = await _at(request, service, "GET", f"/{name}")
    if passed is not None:
        return passed
    switch = _board(request).get(name)
    if switch is None:
        raise NotFound(f"no fault switch {name!r}")
    return switch


@router.delete(
    "/{service}/{name}", summary="Turn a fault switch off (idempotent)", status_code=204, responses=_WITH_BODY
)
async def delete_fault(request: Request, service: Service, name: SwitchName) -> Response:
    passed = await _at(request, service, "DELETE", f"/{name}")
    if passed is not None:
        return passed
    _board(request).delete(name)
    return Response(status_code=204)
