"""Sending the client's request body to a service byte for byte.

``ServiceClient`` (common.http) sends bodies it encodes itself (``json=``); a gateway must pass
on whatever arrived: the login form, a JSON body, even malformed JSON, which the owning
service then rejects with its own 400. ``ServiceClient`` takes an httpx transport, so this
transport swaps in the raw body set with ``forwarding(body)`` for the duration of one call.
Retries rebuild the request from scratch, and each attempt gets the body again.

(A ``content=`` option on ``ServiceClient`` would make this module unnecessary.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from ssl import SSLContext, create_default_context

import httpx

_body: ContextVar[bytes | None] = ContextVar("gateway_forwarded_body", default=None)


@contextmanager
def forwarding(body: bytes) -> Iterator[None]:
    """Calls made inside the block (in this task) send ``body`` as their request body."""
    token = _body.set(body or None)
    try:
        yield
    finally:
        _body.reset(token)


@cache
def _tls() -> SSLContext:
    # Loading the CA bundle takes tens of milliseconds: once for all upstreams is enough.
    return create_default_context()


class RawBodyTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends the body set by ``forwarding`` instead of the encoded one."""

    def __init__(self, max_connections: int) -> None:
        # The pool is as large as the client's bulkhead, as ServiceClient would make it.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._inner = httpx.AsyncHTTPTransport(limits=limits, verify=_tls())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = _body.get()
        if body is not None:
            headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
            request = httpx.Request(
                request.method, request.url, headers=headers, content=body, extensions=request.extensions
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
