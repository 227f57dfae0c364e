"""The routed public API: one FastAPI route per row of the routing table, all served by ``forward``.

Declaring each endpoint (rather than one catch-all) gives 404/405 for everything else for free,
and a ``/docs`` that lists the real public API with its parameters and bodies.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from common.auth import CLIENT_ADDRESS_HEADER
from common.errors import PROBLEM_JSON
from common.http import ServiceClient
from common.openapi import PROBLEM, PUBLIC, problem_response, problem_responses
from gateway_service.api.guard import authenticated_user, public_caller
from gateway_service.domain.routes import (
    FORWARDED_REQUEST_HEADERS,
    FORWARDED_RESPONSE_HEADERS,
    IDEMPOTENCY_KEY_HEADER,
    ROUTES,
    Route,
)

_PATH_PARAM = re.compile(r"{(\w+)}")
_NON_WORD = re.compile(r"\W+")
_FORM_EXAMPLES = {"username": "ada@example.com", "password": "correct-horse"}  # the login form
# The gateway's own answers; the owning service's refusals (4XX) are passed on as they came.
_EDGE_ERRORS = problem_responses(
    described={
        429: "Rate limit exceeded (see Retry-After)",
        503: "The service is unavailable, or reports that a service it needs is (see Retry-After)",
        504: "The service did not answer within the deadline",
    }
)
_PASSED_ON = {
    "4XX": {
        "description": "The service's own refusal, passed on as it answered (see its contract)",
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}},
    }
}


async def forward(request: Request, route: Route) -> Response:
    """Send the request to the owning service; hand its answer back as it is."""
    client: ServiceClient = request.app.state.upstreams[route.upstream]
    # The raw path: the service decodes it exactly as if the client had called it directly.
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    if request.url.query:
        path = f"{path}?{request.url.query}"
    headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    if request.client is not None:
        # Who the client is, for auth's login throttling; services believe it only beside our
        # service token. A client's own X-Client-Address is never forwarded (not in the list).
        headers[CLIENT_ADDRESS_HEADER] = request.client.host
    body = await request.body()  # bounded by the platform's body limit (413)
    # The body byte for byte (a form, JSON, even malformed JSON: the service judges it), sent
    # again on a retry. With the client's Idempotency-Key a POST may be retried; without, never.
    # A service's own problem (also a 5xx one) comes back as an answer and is passed on as is.
    answer = await client.request(
        request.method,
        path,
        content=body or None,
        headers=headers,
        idempotency_key=request.headers.get(IDEMPOTENCY_KEY_HEADER) or None,
    )
    passed = {name: answer.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in answer.headers}
    return Response(
        answer.content,
        status_code=answer.status_code,
        headers=passed,
        media_type=answer.headers.get("content-type"),
    )


def _endpoint(route: Route) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await forward(request, route)

    endpoint.__doc__ = f"Routed to the {route.upstream} service."
    return endpoint


# The query of a paged list (common.pagination; the service checks them: bad ones are its 422).
_PAGE_PARAMETERS = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Items per page, 1..100 (default 50).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "The `next_cursor` of the previous page, unchanged; omit for the first page.",
        "schema": {"type": "string"},
    },
]


def _openapi_extra(route: Route) -> dict[str, Any]:
    """Parameters and body for ``/docs``: the handler reads none of them, it forwards them all."""
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": True, "schema": {"type": "string"}} for name in route.query
    ]
    parameters += [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
        for name in route.headers
    ]
    if route.paged:
        parameters += _PAGE_PARAMETERS
    extra: dict[str, Any] = dict(PUBLIC) if route.public else {}  # else: the guard's bearer scheme
    if parameters:
        extra["parameters"] = parameters
    if route.json_example is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}, "example": route.json_example}},
        }
    elif route.form_fields:
        schema = {
            "type": "object",
            "properties": {name: {"type": "string"} for name in route.form_fields},
            "required": list(route.form_fields),
        }
        example = {name: _FORM_EXAMPLES.get(name, "...") for name in route.form_fields}
        extra["requestBody"] = {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema, "example": example}},
        }
    return extra


def _responses(route: Route) -> dict[int | str, dict[str, Any]]:
    success = {
        route.status: {
            "description": f"The {route.upstream} service's answer, passed on "
            f"(its body: contracts/openapi/{route.upstream}.yaml)"
        }
    }
    own = {} if route.public else {401: problem_response(401, "No valid access token (checked here)")}
    return success | own | _EDGE_ERRORS | _PASSED_ON


def build_router() -> APIRouter:
    """One route per public endpoint of the routing table."""
    router = APIRouter()
    for route in ROUTES:
        guard = public_caller if route.public else authenticated_user
        router.add_api_route(
            route.path,
            _endpoint(route),
            methods=[route.method],
            status_code=route.status,  # for /docs: the answer is the service's, status included
            summary=route.summary,
            tags=[route.upstream],
            dependencies=[Depends(guard)],
            response_class=Response,
            responses=_responses(route),
            openapi_extra=_openapi_extra(route),
            operation_id=f"{route.method.lower()}_{_NON_WORD.sub('_', route.path).strip('_')}",
        )
    return router
