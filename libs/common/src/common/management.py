"""The management port: ``/metrics`` and the service's API docs, apart from the API it serves.

Metrics show process details, per-route counters and breaker states; an internal service's
spec lists its ``/internal/*`` routes. Neither is for the service's callers, so neither is on
its main port: a second listener of the same process (``<PREFIX>_MANAGEMENT_PORT``, bound to
``<PREFIX>_MANAGEMENT_HOST``, loopback by default) serves them to operators and Prometheus,
and a deployment exposes it on the operations network only. See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.docs import docs_routes
from common.edge import SecurityHeadersMiddleware, TrustedHostMiddleware

METRICS_PATH = "/metrics"


async def _metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def management_app(service_app: FastAPI, *, allowed_hosts: Sequence[str] = ("*",)) -> Starlette:
    """The app of ``service_app``'s management port: its metrics and docs (no lifespan of its own)."""
    return Starlette(
        routes=[Route(METRICS_PATH, _metrics, methods=["GET"]), *docs_routes(service_app)],
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts),
        ],
    )
