"""Inbound faults: a pure-ASGI middleware that makes chosen routes slow, failing, hung or dropped.

It reads the switchboard from ``app.state.faults`` on each request (none: it does nothing), and
never touches ``/admin/faults`` (a fault on ``*`` must not lock out the switch that turns it off).
It sits inside the request-context middleware, so an injected answer carries the request id,
is logged and counted like any other.

- ``latency``: wait ``latency_ms``, then serve the request.
- ``error``: answer an RFC 9457 problem with the switch's status (503 by default, with Retry-After).
- ``hang``: answer nothing until the client gives up or the switch ends (then serve it, late).
- ``drop``: close the connection without an answer: the client gets a transport error.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import ProblemError
from common.faults.spec import FaultSpec
from common.faults.switchboard import Switchboard
from common.problems import problem_response

ADMIN_PREFIX = "/admin/faults"
_POLL_S = 0.1  # how often a hang looks at its switch
# What a hang answers once the client has gone (nobody reads it): the access log's "client
# closed request" (nginx's 499) instead of the server's default 500.
CLIENT_GONE = 499


class InjectedFault(ProblemError):
    """The problem an ``error`` switch answers."""

    slug = "fault-injected"

    def __init__(self, name: str, spec: FaultSpec) -> None:
        status = spec.error_status
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
        headers = {"Retry-After": "1"} if status in (429, 503) else {}
        super().__init__(f"Fault injected by switch {name!r}.", status=status, title=title, headers=headers)


class FaultMiddleware:
    """Injects the inbound faults the app's switchboard holds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        board: Switchboard | None = None
        if scope["type"] == "http" and not scope["path"].startswith(ADMIN_PREFIX):
            board = getattr(scope["app"].state, "faults", None) if "app" in scope else None
        injection = board.hit("inbound", scope["path"], scope["method"]) if board else None
        if board is None or injection is None:
            await self.app(scope, receive, send)
            return
        spec = injection.spec
        if spec.kind == "latency":
            await asyncio.sleep((spec.latency_ms or 0) / 1000)
        elif spec.kind == "error":
            await problem_response(InjectedFault(injection.name, spec))(scope, receive, send)
            return
        elif spec.kind == "hang":
            replay = await _hang(board, injection.name, receive)
            if replay is None:
                await send({"type": "http.response.start", "status": CLIENT_GONE, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            receive = replay
        elif spec.kind == "drop":
            await _drop(send)
            return
        await self.app(scope, receive, send)


async def _hang(board: Switchboard, name: str, receive: Receive) -> Receive | None:
    """Wait while switch ``name`` is set; None if the client left, else a receive replaying the body."""
    body: list[Message] = []
    while True:  # read the body first: the next message is then the client's disconnect
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body.append(message)
        if not message.get("more_body", False):
            break
    gone = asyncio.ensure_future(receive())
    try:
        while board.in_force(name):
            done, _ = await asyncio.wait({gone}, timeout=_POLL_S)
            if done:
                return None
    finally:
        if not gone.done():
            gone.cancel()

    async def replay() -> Message:
        return body.pop(0) if body else await receive()

    return replay


async def _drop(send: Send) -> None:
    """Start an answer and end the call without it: the server closes the connection mid-response.

    (An ASGI app can't close its socket; returning with an announced body unsent makes the server
    do it. The client sees the connection end before a complete response: a transport error.)
    """
    await send(
        {
            "type": "http.response.start",
            "status": 502,
            "headers": [(b"content-length", b"1"), (b"connection", b"close")],
        }
    )
