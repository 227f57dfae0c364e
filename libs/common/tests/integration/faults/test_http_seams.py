"""Fault switches at the HTTP seams of real platform apps, served by uvicorn on local ports.

Two services built by ``ServiceRuntime`` exactly as a service's bootstrap builds them: ``room``
calls ``member`` through ``runtime.client``. Switches are set through the real admin API with
service tokens; what the faults do is seen over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from pydantic_settings import SettingsConfigDict
from sqlalchemy import MetaData

from common.auth import ensure_service_keypair
from common.errors import UpstreamUnavailable
from common.faults import FaultSpec
from common.messaging import messaging_tables
from common.runtime import ServiceRuntime
from common.settings import ServiceSettings
from common.testing.tokens import service_headers

SLOW_MS = 400


class MemberSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="T_MEMBER_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "member"


class RoomSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="T_ROOM_", extra="ignore", validate_default=True)
    service_name: ClassVar[str] = "room"


def _runtime(settings_class: type[ServiceSettings], tmp_path: Path, **overrides: Any) -> ServiceRuntime:
    name = settings_class.service_name
    settings = settings_class(
        env="test",
        database_url=f"sqlite:///{tmp_path / f'{name}.db'}",
        service_keys_dir=tmp_path / "keys",
        **overrides,
    )
    return ServiceRuntime(settings, tables=messaging_tables(MetaData()), uses_kafka=False)


def _spec(fields: dict[str, Any]) -> FaultSpec:
    return FaultSpec.model_validate(fields)


def member_app(runtime: ServiceRuntime, served: list[str]) -> FastAPI:
    router = APIRouter()

    @router.api_route("/internal/members/{member_id}", methods=["GET", "POST"])
    async def member(member_id: str) -> dict[str, str]:
        served.append(member_id)
        return {"member_id": member_id}

    return runtime.create_app(title="member", routers=[router])


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest owns the signals


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """``app`` on a free port of 127.0.0.1, with its lifespan; yields its base URL."""
    server = _QuietServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not task.done(), "the server failed to start"
        assert time.monotonic() < deadline, "the server did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Member:
    url: str
    runtime: ServiceRuntime
    served: list[str]
    keys: Path

    def admin(self, caller: str = "ops") -> dict[str, str]:
        return service_headers(self.keys, caller, "member")


@pytest.fixture
async def member(tmp_path: Path) -> AsyncIterator[Member]:
    runtime = _runtime(MemberSettings, tmp_path)
    for caller in ("ops", "gateway", "room"):  # their keys exist before member first reads the folder
        ensure_service_keypair(tmp_path / "keys", caller)
    served: list[str] = []
    async with serve(member_app(runtime, served)) as url:
        yield Member(url, runtime, served, tmp_path / "keys")


async def _put(client: httpx.AsyncClient, member: Member, name: str, spec: dict[str, Any]) -> httpx.Response:
    return await client.put(f"{member.url}/admin/faults/{name}", json=spec, headers=member.admin())


# -- inbound -------------------------------------------------------------------------------------


async def test_admin_api_admits_gateway_and_ops_only_and_refuses_bad_switches(member: Member) -> None:
    spec = {"kind": "error", "where": "inbound", "match": "/internal/members"}
    async with httpx.AsyncClient() as client:
        url = f"{member.url}/admin/faults"
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, headers=member.admin("room"))).status_code == 403
        for caller in ("gateway", "ops"):
            assert (await client.get(url, headers=member.admin(caller))).status_code == 200
        bad = await _put(client, member, "boom", {**spec, "status": 700})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        put = await _put(client, member, "boom", spec)
        assert put.status_code == 200
        assert (put.json()["status"], put.json()["hits"], put.json()["ttl_s"]) == (503, 0, 300)
        listed = (await client.get(url, headers=member.admin())).json()["faults"]
        assert [f["name"] for f in listed] == ["boom"]
        assert (await client.delete(f"{url}/boom", headers=member.admin())).status_code == 204
        assert (await client.get(f"{url}/boom", headers=member.admin())).status_code == 404


async def test_inbound_error_latency_and_switch_off_on_a_real_server(member: Member) -> None:
    async with httpx.AsyncClient(base_url=member.url) as client:
        await _put(
            client, member, "boom", {"kind": "error", "where": "inbound", "match": "/internal", "status": 500}
        )
        failed = await client.get("/internal/members/m1")
        assert failed.status_code == 500
        assert failed.json()["type"].endswith("/fault-injected")
        assert (await client.get("/health/live")).status_code == 200  # not under /internal
        await _put(
            client,
            member,
            "boom",
            {"kind": "latency", "where": "inbound", "match": "/", "latency_ms": SLOW_MS},
        )
        started = time.monotonic()
        assert (await client.get("/internal/members/m2")).status_code == 200
        assert time.monotonic() - started >= SLOW_MS / 1000
        assert (await client.delete("/admin/faults", headers=member.admin())).status_code == 204
        assert (await client.get("/internal/members/m3")).status_code == 200
    assert member.served == ["m2", "m3"]
    labels = {"service": "member", "name": "boom", "kind": "error"}
    assert REGISTRY.get_sample_value("faults_injected_total", labels) == 1


async def test_inbound_drop_closes_the_connection_without_an_answer(member: Member) -> None:
    async with httpx.AsyncClient(base_url=member.url) as client:
        spec = {"kind": "drop", "where": "inbound", "match": "/internal", "methods": ["POST"]}
        assert (await _put(client, member, "cut", spec)).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/internal/members/m1")
        assert (await client.get("/internal/members/m2")).status_code == 200  # GET is spared
    assert member.served == ["m2"]


async def test_inbound_hang_until_the_client_gives_up(member: Member) -> None:
    async with httpx.AsyncClient(base_url=member.url) as client:
        await _put(client, member, "stuck", {"kind": "hang", "where": "inbound", "match": "/internal"})
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/internal/members/m1", timeout=0.5)
        assert member.served == []
        assert (await client.delete("/admin/faults/stuck", headers=member.admin())).status_code == 204
        assert (await client.get("/internal/members/m2")).status_code == 200
    assert member.served == ["m2"]


async def test_switches_from_the_environment_are_set_at_start(tmp_path: Path) -> None:
    faults = [{"name": "boot", "kind": "error", "where": "inbound", "match": "/internal", "status": 502}]
    runtime = _runtime(MemberSettings, tmp_path, faults=faults)
    served: list[str] = []
    app = member_app(runtime, served)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://member") as client:
        assert (await client.get("/internal/members/m1")).status_code == 502
    assert served == []


# -- upstream ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "error", "where": "upstream", "match": "member"},
        {"kind": "drop", "where": "upstream", "match": "member"},
        {"kind": "hang", "where": "upstream", "match": "member"},
        {"kind": "latency", "where": "upstream", "match": "*", "latency_ms": 60_000},
    ],
    ids=lambda spec: spec["kind"],
)
async def test_upstream_faults_meet_the_real_client_and_the_member_sees_nothing(
    tmp_path: Path, member: Member, spec: dict[str, Any]
) -> None:
    room = _runtime(RoomSettings, tmp_path, upstream_max_attempts=1, upstream_timeout_s=0.5)
    async with room.client("member", member.url) as client:
        assert (await client.get("/internal/members/m0")).status_code == 200
        room.faults.set("cut", _spec(spec))
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as problem:  # a 503 problem, as for a real outage
            await client.get("/internal/members/m1")
        assert problem.value.extra["upstream"] == "member"
        assert time.monotonic() - started < 30  # the client's timeout ends a hang or a long delay
        room.faults.delete("cut")
        assert (await client.get("/internal/members/m2")).status_code == 200
    assert member.served == ["m0", "m2"]  # m1 never reached the member service
    labels = {"service": "room", "name": "cut", "kind": spec["kind"]}
    assert (REGISTRY.get_sample_value("faults_injected_total", labels) or 0) >= 1


async def test_upstream_latency_below_the_timeout_is_just_slow(tmp_path: Path, member: Member) -> None:
    room = _runtime(RoomSettings, tmp_path, upstream_timeout_s=5)
    async with room.client("member", member.url) as client:
        room.faults.set(
            "slow", _spec({"kind": "latency", "where": "upstream", "match": "member", "latency_ms": SLOW_MS})
        )
        started = time.monotonic()
        assert (await client.get("/internal/members/m1")).status_code == 200
        assert time.monotonic() - started >= SLOW_MS / 1000
    assert member.served == ["m1"]
