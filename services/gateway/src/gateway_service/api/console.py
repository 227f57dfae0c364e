"""The ops console: a static page at ``/console`` and the admin-only JSON it polls.

The page holds no secret: it logs in with POST /api/v1/auth/token like any client and sends
the admin's token with each call to ``/api/v1/admin/console/*`` (401/403 problems otherwise).
Fault switches are turned off through ``/api/v1/admin/faults``. See docs/console.md.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from common.errors import NotFound, UpstreamUnavailable
from common.messaging.dlq import DlqError
from common.openapi import problem_responses
from gateway_service.adapters.dead_letters import DLQ_TOPICS
from gateway_service.api.faults import admin_user
from gateway_service.service_layer.console import console_state

STATIC = files("gateway_service") / "static"
# The page loads its own script and style and talks to this origin only; links may go anywhere.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}

page = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/api/v1/admin/console", tags=["console"], dependencies=[Depends(admin_user)])


def _static(name: str, media_type: str) -> Response:
    body = (STATIC / name).read_bytes()
    return Response(body, media_type=media_type, headers={"Content-Security-Policy": PAGE_CSP})


@page.get("/console")
async def console_page() -> Response:
    return _static("console.html", "text/html; charset=utf-8")


@page.get("/console/{asset}")
async def console_asset(asset: str) -> Response:
    if asset not in ASSETS:
        raise NotFound(f"no console asset {asset!r}")
    return _static(asset, ASSETS[asset])


class ConsoleState(BaseModel):
    services: list[dict[str, Any]] = Field(description="gateway first, then every upstream and its instances")
    dead_letters: dict[str, Any] = Field(description="letters of every DLQ topic, as last read")
    recent_requests: list[dict[str, Any]] = Field(description="the gateway's last requests, newest first")


class RedriveRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"topic": "room.reservations.dlq", "event_id": None, "group": "member"}]
        }
    )

    topic: str = Field(description="the dead-letter topic", examples=["room.reservations.dlq"])
    event_id: str | None = Field(default=None, description="only letters of this event (None: all)")
    group: str | None = Field(default=None, description="only letters of this consumer group (None: all)")


class RedriveResult(BaseModel):
    redriven: int = Field(description="letters sent back to their consumer groups")


@router.get(
    "/state",
    summary="Every service and instance: readiness, breakers, bulkheads, outbox, lag, dead letters",
    response_model=ConsoleState,
    responses=problem_responses(401, 403, 429),
)
async def state(request: Request) -> ConsoleState:
    s = request.app.state
    document = await console_state(
        s.upstreams, s.faults, s.console_probe, s.dead_letters, s.recent_requests, s.settings.trace_links_base
    )
    return ConsoleState.model_validate(document)


@router.post(
    "/dead-letters/redrive",
    summary="Send dead letters back to their consumer groups (once each)",
    response_model=RedriveResult,
    responses=problem_responses(
        400, 401, 403, 422, 429, described={404: "No such dead-letter topic", 503: "Kafka is unavailable"}
    ),
)
async def redrive(request: Request, body: RedriveRequest) -> RedriveResult:
    if body.topic not in DLQ_TOPICS:
        raise NotFound(f"no dead-letter topic {body.topic!r}; one of: {', '.join(DLQ_TOPICS)}")
    event_ids = None if body.event_id is None else [body.event_id]
    groups = None if body.group is None else [body.group]
    try:
        sent = await request.app.state.dead_letters.redrive(body.topic, event_ids, groups)
    except (DlqError, OSError) as exc:
        raise UpstreamUnavailable(f"redrive failed: {exc}") from exc
    return RedriveResult(redriven=sent)
