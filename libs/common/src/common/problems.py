"""Exception handlers that turn every error path into an RFC 9457 problem response."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.context import request_id_var
from common.errors import PROBLEM_JSON, BadRequest, ProblemError, UnprocessableContent

log = logging.getLogger("common.problems")

_STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
}


def problem_response(problem: ProblemError, request: Request | None = None) -> JSONResponse:
    """Render a problem as ``application/problem+json`` with its headers and the request id."""
    body = problem.to_body(
        instance=request.url.path if request is not None else None,
        request_id=request_id_var.get(),
    )
    return JSONResponse(
        jsonable_encoder(body), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    if exc.status >= 500:
        log.warning("request failed: %s", exc.detail, extra={"status": exc.status})
    return problem_response(exc, request)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_public_error(e) for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errors):
        return problem_response(
            BadRequest("The request body is not valid JSON.", extra={"errors": errors}), request
        )
    return problem_response(
        UnprocessableContent("The request does not match the expected schema.", extra={"errors": errors}),
        request,
    )


def _public_error(error: Any) -> dict[str, Any]:
    # Keep location, message and type; drop echoed input (it may hold a password) and ctx objects.
    return {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = _STATUS_TITLES.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    problem = ProblemError(
        detail, status=exc.status_code, title=title, slug=title.lower().replace(" ", "-"), headers=exc.headers
    )
    return problem_response(problem, request)


def install_problem_handlers(app: FastAPI) -> None:
    """Make validation, HTTP and domain errors answer problem+json (unexpected ones: the middleware)."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
