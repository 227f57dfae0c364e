"""Fixtures for the gateway tests: the gateway in-process, and five small *real* upstreams.

Each upstream is a tiny ASGI app served by uvicorn on a free port of 127.0.0.1, so the gateway
talks real HTTP through its real ``ServiceClient``s. A stub records every request it gets and
answers from rules the test sets (by default it echoes what it saw). The auth stub serves the
JWKS of ``TestUsers``, so the gateway verifies tokens through its real ``JwksKeyCache``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from common.auth import ServiceIdentity, build_service_auth
from common.testing.tokens import TestUsers
from gateway_service.app import create_app
from gateway_service.settings import GatewaySettings

Handler = Callable[[Request], Awaitable[Response]]
UPSTREAM_NAMES = ("auth", "member", "room", "inventory", "notification")


@dataclass(frozen=True)
class Seen:
    """One request as an upstream received it."""

    method: str
    path: str
    raw_path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes


# One scripted answer: (status, body) or (status, body, headers). A dict body is JSON, sent as
# application/problem+json when the status is an error (services answer errors as problems).
Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]


def _response(answer: Answer) -> Response:
    status, body = answer[0], answer[1]
    headers = answer[2] if len(answer) == 3 else None
    if isinstance(body, (dict, list)):
        media_type = "application/problem+json" if status >= 400 else "application/json"
        return JSONResponse(body, status_code=status, headers=headers, media_type=media_type)
    return Response(body or b"", status_code=status, headers=headers)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner owns the process's signals, not a stub


class Stub:
    """A real upstream: records requests, answers from per-route scripts (the last step repeats)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Seen] = []
        self.rules: dict[tuple[str, str], list[Handler]] = {}
        self.released = asyncio.Event()  # slow handlers wait for this (set when stopping)
        self.port = 0
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, method: str, path: str, *answers: Answer) -> None:
        """Answer ``method path`` with ``answers`` in turn, repeating the last one."""
        self.rules[(method, path)] = [self._fixed(a) for a in answers]

    def slow(self, method: str, path: str) -> None:
        """Make ``method path`` never answer while the test runs."""

        async def wait_until_stopped(_request: Request) -> Response:
            await self.released.wait()
            return Response(status_code=503)

        self.rules[(method, path)] = [wait_until_stopped]

    def handle(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` with an async handler of the request."""
        self.rules[(method, path)] = [handler]

    @staticmethod
    def _fixed(answer: Answer) -> Handler:
        async def handler(_request: Request) -> Response:
            return _response(answer)

        return handler

    def requests(self, path: str | None = None) -> list[Seen]:
        """What this upstream received (to ``path`` only, if given)."""
        return [s for s in self.seen if path is None or s.path == path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        self.seen.append(
            Seen(
                method=request.method,
                path=request.url.path,
                raw_path=scope["raw_path"].decode("latin-1"),
                query=request.url.query,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        steps = self.rules.get((request.method, request.url.path))
        if steps:
            handler = steps.pop(0) if len(steps) > 1 else steps[0]
            response = await handler(request)
        else:
            response = JSONResponse(
                {
                    "upstream": self.name,
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "body": body.decode("utf-8", "replace"),
                }
            )
        await response(scope, receive, send)

    async def start(self) -> None:
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,  # a handler left waiting by a failed test can't hang stop()
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert not self._task.done(), f"stub {self.name} failed to start"
            assert time.monotonic() < deadline, f"stub {self.name} did not start"
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the port: from now on connections to this upstream are refused."""
        self.released.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server, self._task = None, None


@dataclass
class Gateway:
    """The gateway app running in-process, with clients that may pose as any client IP."""

    app: FastAPI
    settings: GatewaySettings

    @contextlib.asynccontextmanager
    async def client(self, ip: str = "203.0.113.7") -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
def users() -> TestUsers:
    return TestUsers()


@pytest.fixture
async def upstreams(users: TestUsers) -> AsyncIterator[dict[str, Stub]]:
    """The five upstreams, started; the auth stub serves the test users' JWKS."""
    stubs = {name: Stub(name) for name in UPSTREAM_NAMES}
    stubs["auth"].answer("GET", "/.well-known/jwks.json", (200, users.issuer.jwks()))
    await asyncio.gather(*(stub.start() for stub in stubs.values()))
    try:
        yield stubs
    finally:
        await asyncio.gather(*(stub.stop() for stub in stubs.values()))


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on (bound, never listening: connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def gateway_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstreams: dict[str, Stub]
) -> GatewayFactory:
    """``async with gateway_with(rate_limit="3/minute", room_url=...) as gw``: settings overridden."""
    monkeypatch.setenv("RUN_DIR", str(tmp_path))

    @contextlib.asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Gateway]:
        urls = {f"{name}_url": stub.url for name, stub in upstreams.items()}
        settings = GatewaySettings(env="test", service_keys_dir=tmp_path / "keys", **{**urls, **overrides})
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield Gateway(app, settings)

    return start


@pytest.fixture
async def gateway(gateway_with: GatewayFactory) -> AsyncIterator[Gateway]:
    async with gateway_with() as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client() as c:
        yield c


@pytest.fixture
def service_caller(tmp_path: Path) -> Callable[[str, dict[str, str]], ServiceIdentity]:
    """``service_caller(callee, seen.headers)``: who the request's service token says sent it."""

    def verify(callee: str, headers: dict[str, str]) -> ServiceIdentity:
        auth = build_service_auth("jwt", callee, tmp_path / "keys", None)
        return auth.authenticate(httpx.Headers(headers))

    return verify
