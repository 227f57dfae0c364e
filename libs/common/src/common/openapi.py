"""The OpenAPI side of the platform, written once: problem responses, security schemes, the spec file.

Every route documents what it answers, success *and* errors, and who may call it::

    from common.openapi import USER, problem_responses

    MINE = problem_responses(401, described={404: "No such reservation of mine"})

    @router.get("/api/v1/reservations/{reservation_id}", responses=MINE, openapi_extra=USER)
    def get_reservation(...) -> ReservationOut: ...

- ``problem_responses(401, 409, ...)`` gives FastAPI ``responses=`` entries whose body is the
  ``Problem`` schema (``application/problem+json``, RFC 9457) and whose headers are the ones the
  platform sets (``Retry-After`` on 429/503/504, ``WWW-Authenticate`` on 401).
- ``USER``, ``SERVICE`` and ``PUBLIC`` are ``openapi_extra=`` values naming the security scheme
  of the route: a user access token (``UserBearer``), a service token (``ServiceToken``), none.
- ``install_openapi(app)`` (the app factory calls it) adds the ``Problem`` schema and the
  security schemes its routes use to the app's spec, turns FastAPI's generic 422 (``HTTPValidationError``,
  ``application/json``) into the problem the platform really answers, and adds what the
  platform's middleware answers on every route: 504 (the caller's ``X-Deadline-Ms`` already
  spent) and, where a body is accepted, 413 (body over the limit).

The committed specs (``contracts/openapi/<service>.yaml``) are made from ``app.openapi()`` by
``tools/contracts/openapi.py`` (``make contracts``); ``make test`` fails when they drift.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI

from common.auth.service_tokens import SERVICE_TOKEN_HEADER
from common.errors import PROBLEM_JSON, PROBLEM_TYPE_BASE

Responses = dict[int | str, dict[str, Any]]

PROBLEM = "Problem"
USER_BEARER = "UserBearer"
SERVICE_TOKEN = "ServiceToken"

_REF = "#/components/schemas/"

# -- security: who may call a route (``openapi_extra=`` of the route) -------------------------------

USER: dict[str, Any] = {"security": [{USER_BEARER: []}]}
"""A user access token: ``Authorization: Bearer <jwt>`` (401 without a valid one)."""
SERVICE: dict[str, Any] = {"security": [{SERVICE_TOKEN: []}]}
"""A service token from an allowed calling service (401 without one, 403 from another caller)."""
PUBLIC: dict[str, Any] = {"security": []}
"""No credentials needed."""

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    USER_BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A user access token from `POST /api/v1/auth/token` (EdDSA JWT with `kid`; "
        "iss `auth`, aud `reservations`, `sub` = user id, `roles`). Verified locally against "
        "auth's JWKS (`/.well-known/jwks.json`).",
    },
    SERVICE_TOKEN: {
        "type": "apiKey",
        "in": "header",
        "name": SERVICE_TOKEN_HEADER,
        "description": "A service token (JWT, iss = calling service, aud = this service, exp <= 60 s, "
        "`jti`), signed with the caller's own key. Internal routes admit an allow-list of callers: "
        "none or an invalid token is a 401, a valid token from another service a 403.",
    },
}

# -- problems: every error the platform answers ---------------------------------------------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM,
    "description": "RFC 9457 problem details: every error of every service has this shape. "
    "Extension members beyond those listed may appear.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "A URI naming the kind of problem.",
            "examples": [f"{PROBLEM_TYPE_BASE}not-found"],
        },
        "title": {"type": "string", "description": "The kind of problem, for humans."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status."},
        "detail": {"type": "string", "description": "What went wrong in this occurrence."},
        "instance": {"type": "string", "description": "The path of the request."},
        "request_id": {
            "type": "string",
            "description": "The request's id (also in `X-Request-ID`): quote it when reporting.",
        },
        "errors": {
            "type": "array",
            "description": "For 400/422: each part of the request that was refused.",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
        "upstream": {"type": "string", "description": "For 503/504: the service that failed to answer."},
    },
    "additionalProperties": True,
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with.",
        "required": True,
        "schema": {"type": "string"},
    }
}

# Status → (what it means unless the route says better, the headers that come with it).
_DEFAULTS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The request is malformed: its body is not valid JSON, or a required header is missing", {}),
    401: ("No valid credentials", _WWW_AUTHENTICATE),
    403: ("The credentials are valid but not allowed to do this", {}),
    404: ("Not found", {}),
    409: ("The request conflicts with the current state", {}),
    413: ("The request body is larger than the service accepts", {}),
    422: ("The request does not match the schema or the rules (see `errors`)", {}),
    429: ("Too many requests: rate limit exceeded (see `Retry-After`)", _RETRY_AFTER),
    503: ("A service needed is unavailable: try again after `Retry-After`", _RETRY_AFTER),
    504: ("The request's time budget ran out (`X-Deadline-Ms`) before an answer", _RETRY_AFTER),
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """One ``responses=`` entry: ``status`` answered with a ``Problem`` (and its usual headers)."""
    default, headers = _DEFAULTS.get(status, ("Error", {}))
    entry: dict[str, Any] = {
        "description": description or default,
        "content": {PROBLEM_JSON: {"schema": {"$ref": _REF + PROBLEM}}},
    }
    if headers:
        entry["headers"] = copy.deepcopy(headers)
    return entry


def problem_responses(*statuses: int, described: Mapping[int, str] | None = None) -> Responses:
    """``responses=`` entries for ``statuses`` (usual meanings) and ``described`` (own words)."""
    responses: Responses = {status: problem_response(status) for status in statuses}
    for status, description in (described or {}).items():
        responses[status] = problem_response(status, description)
    return dict(sorted(responses.items(), key=lambda item: str(item[0])))


# -- the app's spec -----------------------------------------------------------------------------------


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the ``Problem`` schema, the security schemes and problem 422s."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete_spec(generate())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def complete_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the platform's components and responses to ``spec``; replace FastAPI's 422s (in place)."""
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})[PROBLEM] = copy.deepcopy(PROBLEM_SCHEMA)
    used = {
        name for op in _operations(spec) for requirement in op.get("security", []) for name in requirement
    }
    for name, scheme in SECURITY_SCHEMES.items():
        if name in used:  # an app may declare its own (the gateway's login flow): that one stays
            components.setdefault("securitySchemes", {}).setdefault(name, copy.deepcopy(scheme))
    generic_422 = {"$ref": _REF + "HTTPValidationError"}
    for operation in _operations(spec):
        responses = operation.setdefault("responses", {})
        schema = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema")
        if schema == generic_422:
            responses["422"] = problem_response(422)
        # What the platform's middleware answers on any route (RequestContextMiddleware).
        if "requestBody" in operation:
            responses.setdefault("413", problem_response(413))
        responses.setdefault("504", problem_response(504))
    if not _mentions(spec["paths"], generic_422["$ref"]):
        for name in ("HTTPValidationError", "ValidationError"):
            components["schemas"].pop(name, None)
    return spec


def _operations(spec: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for item in spec.get("paths", {}).values():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}:
                yield operation


def _mentions(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_mentions(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, ref) for v in node)
    return False
