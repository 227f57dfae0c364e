"""The app factory every service uses: middleware, problem handlers, health and metrics.

A service's ``create_app`` builds its routers and dependencies and hands them here, so
request ids, deadlines, the request's span (OpenTelemetry's ASGI middleware), body limits,
problem+json, security headers, the Host check, ``/health/*`` and the management port's app
(``/metrics``, docs) are identical everywhere and written once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.context import (
    REQUEST_ID_HEADER,
    Deadline,
    deadline_var,
    new_request_id,
    request_id_var,
)
from common.docs import docs_routes
from common.edge import SecurityHeadersMiddleware, TrustedHostMiddleware
from common.errors import DeadlineExceeded, PayloadTooLarge, ProblemError
from common.faults import FaultMiddleware
from common.health import ReadinessCheck, run_checks
from common.management import management_app
from common.metrics import HTTP_LATENCY, HTTP_REQUESTS
from common.openapi import PUBLIC, install_openapi
from common.problems import install_problem_handlers, problem_response
from common.tracing import configure_tracing

log = logging.getLogger("common.access")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class RequestContextMiddleware:
    """Sets request id and deadline for the request; enforces the body limit; names its span.

    The trace context is set outside, by OpenTelemetry's ASGI middleware: its W3C propagator
    continues a valid ``traceparent`` (version 00 is exactly 55 characters; 6 kB of "flags" starts
    a new trace rather than travelling on to every hop and into Kafka headers).

        Pure ASGI (not BaseHTTPMiddleware) so contextvars set here are seen by the endpoint and
        streaming bodies are counted as they arrive.
    """

    def __init__(self, app: ASGIApp, *, service: str, request_timeout_s: float, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.request_timeout_s = request_timeout_s
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming_id = headers.get(REQUEST_ID_HEADER.lower(), "")
        request_id = incoming_id if _SAFE_REQUEST_ID.match(incoming_id) else new_request_id()
        deadline = Deadline.from_headers(headers, cap=self.request_timeout_s)
        tokens = (request_id_var.set(request_id), deadline_var.set(deadline))
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                # The route is known now, and the server span still open (it ends with the
                # response): it gets its low-cardinality name (GET /api/rooms/{id}).
                template = getattr(scope.get("route"), "path", "unmatched")
                span = trace.get_current_span()
                span.update_name(f"{scope['method']} {template}")
                span.set_attribute("http.route", template)
                span.set_attribute("request.id", request_id)
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            problem = self._reject_early(headers, deadline)
            if problem is not None:
                await problem_response(problem)(scope, receive, send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        except Exception:
            if status != 500 or started_response:
                raise
            # The stack trace goes to the log (with the request id), never to the client.
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            unexpected = ProblemError("An unexpected error occurred; quote the request id when reporting it.")
            await problem_response(unexpected)(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, template).observe(elapsed)
            if not scope["path"].startswith("/health"):
                log.info(
                    "%s %s -> %s in %.1f ms",
                    method,
                    scope["path"],
                    status,
                    elapsed * 1000,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 1)},
                )
            for var, token in zip((request_id_var, deadline_var), tokens, strict=True):
                var.reset(token)  # type: ignore[attr-defined]

    def _reject_early(self, headers: dict[str, str], deadline: Deadline) -> ProblemError | None:
        if deadline.expired:
            return DeadlineExceeded("The request's time budget was already spent when it arrived.")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return self._too_large()
        return None

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body exceeds {self.max_body_bytes} bytes.")

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    # An HTTPException: FastAPI re-raises those from body parsing (others become 400).
                    raise StarletteHTTPException(413, self._too_large().detail)
            return message

        return counted


def create_service_app(
    *,
    service: str,
    title: str,
    routers: Sequence[APIRouter] = (),
    readiness: Sequence[ReadinessCheck] = (),
    lifespan: Lifespan | None = None,
    request_timeout_s: float = 10.0,
    max_body_bytes: int = 1_048_576,
    description: str = "",
    version: str = "0.1.0",
    state: dict[str, Any] | None = None,
    public_docs: bool = False,
    allowed_hosts: Sequence[str] = ("*",),
) -> FastAPI:
    """Build a FastAPI app with the platform's middleware, errors, health and metrics.

    Its management app (``app.state.management``: ``/metrics`` and the docs) is served on the
    management port; ``public_docs`` serves the docs on the main port too (the gateway: its
    spec *is* the public API). ``allowed_hosts``: the ``Host`` names answered (``*``: any).
    """

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
            return
        async with lifespan(app):
            yield

    # FastAPI's own docs routes are off: ``common.docs`` serves them with a policy that fits.
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # No "/path/" -> "/path" redirects: each would build a Location from the client's Host. The
    # routes are the API; anything else is a 404 problem.
    app.router.redirect_slashes = False
    install_openapi(app)
    for key, value in (state or {}).items():
        setattr(app.state, key, value)
    install_problem_handlers(app)
    app.add_middleware(FaultMiddleware)  # inside the request context: faults are logged and counted
    # Outermost last: the request context (id, metrics) around the Host check, so a refused Host
    # is counted and its problem carries the request id; security headers on every answer.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(
        RequestContextMiddleware,
        service=service,
        request_timeout_s=request_timeout_s,
        max_body_bytes=max_body_bytes,
    )
    # Around the request context: the server span (a child of a valid incoming traceparent) is
    # current for the access log line and everything the request does. Health probes get none.
    configure_tracing(service)  # a no-op when the CLI configured the process already
    app.add_middleware(OpenTelemetryMiddleware, excluded_urls="/health/", exclude_spans=["receive", "send"])
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(_health_router(readiness))
    for router in routers:
        app.include_router(router)
    if public_docs:
        app.router.routes.extend(docs_routes(app))
    app.state.management = management_app(app, allowed_hosts=allowed_hosts)
    return app


class Readiness(BaseModel):
    """The body of ``/health/ready``: the verdict and what each check saw."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Any]


def _health_router(checks: Sequence[ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live", summary="The process is up", openapi_extra=PUBLIC)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        summary="Dependencies are reachable",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: a dependency check failed"}},
        openapi_extra=PUBLIC,
    )
    async def ready() -> JSONResponse:
        report = await run_checks(checks)
        body = {"status": "ready" if report.ready else "not_ready", "checks": report.checks}
        return JSONResponse(body, status_code=200 if report.ready else 503)

    return router


def request_state(request: Request, name: str) -> Any:
    """Fetch a composition-root object stored on ``app.state`` (raises if it was never wired)."""
    return getattr(request.app.state, name)
