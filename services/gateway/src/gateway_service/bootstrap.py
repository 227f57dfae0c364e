"""Composition root of the gateway service: the runtime, its collaborators and the app."""

from fastapi import FastAPI
from starlette.middleware import Middleware

from common.runtime import ServiceRuntime
from gateway_service.adapters.dead_letters import DeadLetterBoard
from gateway_service.adapters.orm import messaging
from gateway_service.adapters.probe import Probe
from gateway_service.adapters.rate_limit import RateLimiter
from gateway_service.adapters.recent import RecentRequests, RecentRequestsMiddleware
from gateway_service.api import console, dashboard, faults
from gateway_service.api.proxy import build_router
from gateway_service.settings import GatewaySettings


def build_app(settings: GatewaySettings) -> FastAPI:
    """Wire the gateway service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging, uses_kafka=False)
    # A proxy passes a service's problems on: a 5xx problem+json (room: "member is down") is the
    # service's answer, not an outage of it: returned as is, not retried, no strike on its breaker.
    upstreams = {
        name: runtime.client(name, url, problems_are_answers=True, timeout=settings.upstream_timeout(name))
        for name, url in settings.upstream_urls().items()
    }
    recent = RecentRequests()
    app = runtime.create_app(
        title="Reservations API (gateway)",
        description=(
            "The public API of the reservation & license system. The gateway routes each call to "
            "the service that owns it, checks access tokens, limits rates, and serves the "
            "dashboard aggregate. Log in with **Authorize** (POST /api/v1/auth/token)."
        ),
        routers=[build_router(), dashboard.router, faults.router, console.router, console.page],
        public_docs=True,  # its spec is the public API (internal services: management port only)
        settings=settings,
        upstreams=upstreams,
        rate_limiter=RateLimiter(settings.rate_limit),
        console_probe=Probe(),
        dead_letters=DeadLetterBoard(settings.kafka_bootstrap_servers),
        recent_requests=recent,
    )
    # Innermost (add_middleware would put it outermost): inside the request context, where the
    # request's trace id is set.
    app.user_middleware.append(Middleware(RecentRequestsMiddleware, recent=recent))
    return app
