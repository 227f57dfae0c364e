"""ServiceClient over two real HTTP servers (uvicorn on local ports): one stops, then comes back.

The instances are platform apps built by ``ServiceRuntime`` (readiness and all); the caller is a
``ServiceRuntime`` too, whose ``member_url`` lists both, as ``stack up --instances`` sets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from pydantic_settings import SettingsConfigDict
from sqlalchemy import MetaData

from common.auth import ensure_service_keypair
from common.messaging import messaging_tables
from common.runtime import ServiceRuntime
from common.settings import ServiceSettings


class MemberSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="T_LB_MEMBER_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "member"


class RoomSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="T_LB_ROOM_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "room"
    member_url: str = ""


def _runtime(
    settings_class: type[ServiceSettings], tmp_path: Path, db: str = "", **overrides: Any
) -> ServiceRuntime:
    name = db or settings_class.service_name
    settings = settings_class(
        env="test",
        database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
        service_keys_dir=tmp_path / "keys",
        **overrides,
    )
    return ServiceRuntime(settings, tables=messaging_tables(MetaData()), uses_kafka=False)


def member_app(runtime: ServiceRuntime, name: str, served: list[str]) -> FastAPI:
    router = APIRouter()

    @router.api_route("/internal/members/{member_id}", methods=["GET", "POST"])
    async def member(member_id: str, request: Request) -> dict[str, str]:
        served.append(name)
        return {"member_id": member_id, "instance": name}

    return runtime.create_app(title="member", routers=[router])


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest owns the signals


class Instance:
    """One member instance on a fixed port, which can be stopped and started again."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = 0
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1
        )
        self._server = server = _QuietServer(config)
        self._task = task = asyncio.create_task(server.serve())
        deadline = time.monotonic() + 60
        while not server.started:
            assert not task.done(), "the server failed to start"
            assert time.monotonic() < deadline, "the server did not start"
            await asyncio.sleep(0.01)
        self.port = server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None


@pytest.fixture
async def members(tmp_path: Path) -> AsyncIterator[tuple[Instance, Instance, list[str]]]:
    ensure_service_keypair(tmp_path / "keys", "room")
    served: list[str] = []
    one = Instance(member_app(_runtime(MemberSettings, tmp_path, "member-1"), "one", served))
    two = Instance(member_app(_runtime(MemberSettings, tmp_path, "member-2"), "two", served))
    await one.start()
    await two.start()
    try:
        yield one, two, served
    finally:
        await one.stop()
        await two.stop()


async def _poll(check: Any, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_one_of_two_instances_stops_and_comes_back(tmp_path: Path, members) -> None:
    one, two, served = members
    room = _runtime(
        RoomSettings,
        tmp_path,
        member_url=f"{one.url},{two.url}",
        outlier_ejection_s=0.5,
        breaker_minimum_calls=1,  # the breaker would open at one counted failure
        breaker_failure_rate=0.01,
    )
    client = room.client("member", room.settings.upstream_urls()["member"])
    try:
        for i in range(10):
            assert (await client.get(f"/internal/members/m{i}")).status_code == 200
        assert sorted(set(served)) == ["one", "two"]  # both took calls

        await two.stop()
        served.clear()
        for i in range(20):  # keyed POSTs and GETs: none fails, none reaches the stopped one
            answer = await client.post(f"/internal/members/p{i}", json={}, idempotency_key=f"k{i}")
            assert answer.status_code == 200
            assert (await client.get(f"/internal/members/g{i}")).status_code == 200
        assert set(served) == {"one"}
        assert client.state.instances == {one.url: "in", two.url: "ejected"}
        assert client.state.breaker == "closed"

        await two.start()  # the same port again
        served.clear()

        async def two_serves_again() -> bool:
            await client.get("/internal/members/again")
            return "two" in served

        await _poll(two_serves_again)  # after its ejection (0.5 s) and one readiness probe
        assert client.state.instances == {one.url: "in", two.url: "in"}
        assert client.state.breaker == "closed"
    finally:
        await client.aclose()


async def test_readiness_lists_the_instances_of_each_upstream(tmp_path: Path, members) -> None:
    one, two, _ = members
    room = _runtime(RoomSettings, tmp_path, member_url=f"{one.url},{two.url}")
    room.client("member", room.settings.upstream_urls()["member"])
    app = room.create_app(title="room")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        body = (await http.get("/health/ready")).json()
    assert body["checks"]["instances"]["detail"] == {"member": {one.url: "in", two.url: "in"}}
