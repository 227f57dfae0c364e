"""The last requests through the gateway (time, method, path, status, trace id), in memory.

The console links each to its trace in the trace UI. The middleware sits inside the request
context (``common.app_factory``), where the request's trace id is known.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.context import current_trace

KEEP = 50
# The console's own polling and health probes would push every real request out.
UNRECORDED_PREFIXES = ("/health", "/console", "/api/v1/admin/console")


@dataclass(frozen=True)
class RecentRequest:
    at: str
    method: str
    path: str
    status: int
    trace_id: str | None


class RecentRequests:
    def __init__(self, keep: int = KEEP) -> None:
        self._items: deque[RecentRequest] = deque(maxlen=keep)

    def add(self, item: RecentRequest) -> None:
        self._items.append(item)

    def newest_first(self) -> list[dict[str, Any]]:
        return [asdict(item) for item in reversed(self._items)]


class RecentRequestsMiddleware:
    def __init__(self, app: ASGIApp, *, recent: RecentRequests) -> None:
        self.app = app
        self.recent = recent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNRECORDED_PREFIXES):
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees when nothing was sent

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            trace = current_trace()
            self.recent.add(
                RecentRequest(
                    datetime.now(UTC).isoformat(timespec="milliseconds"),
                    str(scope.get("method", "")),
                    path,
                    status,
                    trace.trace_id if trace else None,
                )
            )
