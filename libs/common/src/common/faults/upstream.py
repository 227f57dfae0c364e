"""Outgoing faults: an httpx transport that makes calls to one named upstream fail.

``ServiceRuntime.client()`` puts it under every ``ServiceClient``, so the client's own
timeout, retries, breaker and bulkhead meet the fault exactly as they would meet a real one:

- ``latency``: wait ``latency_ms``, then send (the client's per-attempt timeout still applies).
- ``error``: answer the switch's status (503 by default) without sending, as a plain-text body:
  what a proxy in front of a failing upstream answers, so even a client that passes problems
  on as answers (the gateway) counts it as the upstream failing.
- ``hang``: never answer while the switch is set (the client's timeout ends the attempt).
- ``drop``: raise ``httpx.RemoteProtocolError``, what a connection closed without an answer raises.

Calls to ``/admin/faults`` pass untouched, so a gateway can always reach a switch to turn it off.
"""

from __future__ import annotations

import asyncio
from functools import cache
from ssl import SSLContext

import httpx

from common.faults.inbound import ADMIN_PREFIX
from common.faults.switchboard import Switchboard

_POLL_S = 0.1


@cache
def _tls() -> SSLContext:
    """httpx's default TLS settings, loaded once (the CA bundle is slow to read)."""
    return httpx.create_ssl_context()


def http_transport(max_connections: int) -> httpx.AsyncHTTPTransport:
    """The real network transport, with a pool as large as the client's bulkhead."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncHTTPTransport(limits=limits, verify=_tls())


class FaultTransport(httpx.AsyncBaseTransport):
    """Wraps the transport of the client of ``upstream``; injects the faults ``faults`` holds."""

    def __init__(self, inner: httpx.AsyncBaseTransport, faults: Switchboard, upstream: str) -> None:
        self.inner = inner
        self.faults = faults
        self.upstream = upstream

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        injection = None
        if not request.url.path.startswith(ADMIN_PREFIX):
            injection = self.faults.hit("upstream", self.upstream, request.method)
        if injection is not None:
            spec = injection.spec
            if spec.kind == "latency":
                await asyncio.sleep((spec.latency_ms or 0) / 1000)
            elif spec.kind == "error":
                return httpx.Response(
                    spec.error_status,
                    text=f"fault switch {injection.name!r}: {self.upstream} failed",
                    headers={"Retry-After": "1"} if spec.error_status in (429, 503) else {},
                    request=request,
                )
            elif spec.kind == "hang":
                # Polled: a switch ends by its TTL or from another thread, there is no event to await.
                while self.faults.in_force(injection.name):  # noqa: ASYNC110
                    await asyncio.sleep(_POLL_S)
            elif spec.kind == "drop":
                raise httpx.RemoteProtocolError(
                    f"fault switch {injection.name!r}: the connection closed without a response",
                    request=request,
                )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
