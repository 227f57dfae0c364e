"""The figures: each measures the system and, in the same run, the baseline it is compared with.

Every figure is an ``async`` function of a ``Bench`` returning a JSON-able dict; the numbers go
into the results file as they are, the ratios next to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.load import Request, Samples, client, closed_loop, open_loop
from bench.procstat import CpuMeter, cpu_seconds, rss_mib
from stack.ports import free_port_block, port_open
from stack.runner import Stack

PASSWORD = "correct-horse-battery"
SERVICES = ("gateway", "auth", "member", "room", "inventory", "notification")


@dataclass
class Bench:
    """What the figures share: the running stack and how long to measure."""

    stack: Stack
    rate: float = 100.0  # requests per second of the open loops
    duration: float = 10.0  # seconds per measurement
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    samples: int = 50  # sequential samples (latencies of one thing at a time)
    idle_window: float = 30.0
    say: Callable[[str], None] = print
    _users: list[dict[str, str]] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return self.stack.url("gateway")

    def pids(self, *names: str) -> dict[str, int]:
        return {name: pid for name in names if (pid := self.stack.pid(name)) is not None}

    async def user(self, http: httpx.AsyncClient) -> dict[str, str]:
        """A new member with a profile (sign-up, log in, wait for the profile event)."""
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        signup = await http.post(
            "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "display_name": "Bench"}
        )
        signup.raise_for_status()
        token = await _login(http, email)
        auth = {"Authorization": f"Bearer {token}"}

        async def has_profile() -> bool:
            return (await http.get("/api/v1/members/me", headers=auth)).status_code == 200

        await _until(has_profile, f"the member profile of {email}")
        return auth


async def _login(http: httpx.AsyncClient, email: str) -> str:
    answer = await http.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def _per_request_ms(cpu: dict[str, float], count: int) -> dict[str, float]:
    return {name: round(seconds * 1000 / max(count, 1), 3) for name, seconds in cpu.items()}


def _pq(samples: Samples) -> str:
    return f"{samples.percentile(0.5):.1f}/{samples.percentile(0.99):.1f}"


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


# --------------------------------------------------------------------------- baselines


@contextlib.contextmanager
def _bare_app(kind: str) -> Iterator[tuple[str, int]]:
    """A bare FastAPI or Starlette app under uvicorn on a free port: (base URL, pid)."""
    port = free_port_block(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.baselines", kind, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bare {kind} app did not start (exit {proc.poll()})")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    """Poll ``check`` every 2 ms until it is true; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.002)


# --------------------------------------------------------------------------- figures


async def _reserve(http: httpx.AsyncClient, auth: dict[str, str], stay: dict[str, str]) -> httpx.Response:
    """POST a reservation with a fresh Idempotency-Key (room requires one)."""
    headers = auth | {"Idempotency-Key": uuid.uuid4().hex}
    return await http.post("/api/v1/reservations", headers=headers, json=stay)


async def _breaker_open(b: Bench, service: str, upstream: str) -> bool:
    """Whether ``service``'s breaker to ``upstream`` is open (its /metrics: state 2)."""
    async with client(b.stack.management_url(service)) as http:
        text = (await http.get("/metrics")).text
    wanted = f'circuit_breaker_state{{service="{service}",upstream="{upstream}"}} 2.0'
    return wanted in text


def _get(path: str) -> Request:
    async def send(http: httpx.AsyncClient, _i: int) -> httpx.Response:
        return await http.get(path)

    return send


async def hop(b: Bench) -> dict[str, Any]:
    """GET the room list: through the gateway, from room direct, from bare FastAPI/Starlette."""
    result: dict[str, Any] = {}
    with (
        _bare_app("fastapi") as (fastapi_url, fastapi_pid),
        _bare_app("starlette") as (starlette_url, starlette_pid),
    ):
        targets = {
            "gateway": (b.gateway, "/api/v1/rooms", b.pids("gateway", "room")),
            "room": (b.stack.url("room"), "/api/v1/rooms", b.pids("room")),
            "fastapi": (fastapi_url, "/rooms", {"fastapi": fastapi_pid}),
            "starlette": (starlette_url, "/rooms", {"starlette": starlette_pid}),
        }
        for name, (url, path, pids) in targets.items():
            send = _get(path)
            async with client(url) as http:
                await closed_loop(http, send, 4, min(1.0, b.duration))  # warm up: pools, caches
                meter = CpuMeter(pids)
                meter.start()
                fixed = await open_loop(http, send, b.rate, b.duration)
                cpu = meter.stop()
                busy = await closed_loop(http, send, 16, b.duration)
            result[name] = {
                f"open_{b.rate:g}rps": fixed.summary(),
                "cpu_ms_per_request": _per_request_ms(cpu, fixed.count),
                "closed_16": busy.summary(),
            }
            b.say(
                f"  hop {name}: p50 {fixed.percentile(0.5):.2f} ms, closed-loop {busy.summary()['rps']} rps"
            )
    key = f"open_{b.rate:g}rps"
    gw, room = result["gateway"][key], result["room"][key]
    result["ratios"] = {
        "hop_added_p50_ms": round(float(gw["p50_ms"]) - float(room["p50_ms"]), 2),
        "hop_added_p99_ms": round(float(gw["p99_ms"]) - float(room["p99_ms"]), 2),
        "room_cpu_vs_bare_fastapi": _ratio(
            result["room"]["cpu_ms_per_request"]["room"], result["fastapi"]["cpu_ms_per_request"]["fastapi"]
        ),
        "gateway_cpu_vs_bare_fastapi": _ratio(
            result["gateway"]["cpu_ms_per_request"]["gateway"],
            result["fastapi"]["cpu_ms_per_request"]["fastapi"],
        ),
    }
    return result


async def open_breaker(b: Bench) -> dict[str, Any]:
    """Reservations while member is down: the open breaker's 503, through the gateway and direct."""
    async with client(b.gateway) as http:
        auth = await b.user(http)
    b.stack.stop_service("member")
    try:
        body = {
            "room_id": "r101",
            "check_in": str(date.today()),
            "check_out": str(date.today() + timedelta(1)),
        }
        result: dict[str, Any] = {}
        for name, url in (("gateway", b.gateway), ("room", b.stack.url("room"))):
            async with client(url) as http:
                # Open the breaker first: the failures it counts are the slow part.
                for _ in range(20):
                    await _reserve(http, auth, body)
                await _until(lambda: _breaker_open(b, "room", "member"), "room's breaker to member to open")
                rejected = await open_loop(
                    http,
                    lambda h, _i: _reserve(h, auth, body),
                    20,
                    b.duration,
                )
            result[name] = rejected.summary()
            b.say(f"  open breaker via {name}: p50/p99 {_pq(rejected)} ms")
        result["replaces_timeout_ms"] = 2000  # room's member_timeout_s default: what a call would wait
    finally:
        b.stack.start_service("member", timeout=300, migrate=False)
    return result


def _stays(count: int) -> list[dict[str, str]]:
    """``count`` distinct (room, night) stays in the seeded inventory (r101..r104 have 2 units)."""
    today = datetime.now(UTC).date()
    stays = [
        {
            "room_id": f"r10{room}",
            "check_in": str(today + timedelta(night)),
            "check_out": str(today + timedelta(night + 1)),
        }
        for night in range(1, 59)
        for room in range(1, 5)
    ]
    if count > len(stays):
        raise ValueError(f"at most {len(stays)} concurrent workers")
    return stays[:count]


async def reservations(b: Bench) -> dict[str, Any]:
    """Reserve-then-cancel cycles at each concurrency: rps, create p50/p99, CPU per cycle."""
    result: dict[str, Any] = {}
    async with client(b.gateway, connections=2 * max(b.concurrency)) as http:
        users = [await b.user(http) for _ in range(max(b.concurrency))]
        for workers in b.concurrency:
            stays = _stays(workers)
            created = Samples()
            meter = CpuMeter(b.pids("gateway", "room", "member", "inventory"))
            end = time.perf_counter() + b.duration

            meter.start()
            began = time.perf_counter()
            await asyncio.gather(*(_cycles(http, users[w], stays[w], end, created) for w in range(workers)))
            created.elapsed = time.perf_counter() - began
            cpu = meter.stop()
            result[f"c{workers}"] = created.summary() | {
                "cpu_ms_per_cycle": _per_request_ms(cpu, created.count)
            }
            b.say(
                f"  reservations c={workers}: {created.summary()['rps']} cycles/s, p50/p99 {_pq(created)} ms"
            )
    return result


async def _cycles(
    http: httpx.AsyncClient, auth: dict[str, str], stay: dict[str, str], end: float, out: Samples
) -> None:
    """One worker: reserve ``stay`` (timed), cancel it (untimed), until ``end``."""
    while time.perf_counter() < end:
        headers = auth | {"Idempotency-Key": uuid.uuid4().hex}
        began = time.perf_counter()
        try:
            answer = await http.post("/api/v1/reservations", headers=headers, json=stay)
        except httpx.HTTPError:
            out.errors += 1
            continue
        out.add(time.perf_counter() - began, answer.status_code)
        if answer.status_code == 201:
            await http.delete(f"/api/v1/reservations/{answer.json()['reservation_id']}", headers=auth)


async def booked_after_201(b: Bench) -> dict[str, Any]:
    """201 → inventory shows the nights booked (outbox → relay → Kafka → consumer), vs raw Kafka."""
    applied = Samples()
    async with client(b.gateway) as http:
        auth = await b.user(http)
        stay = _stays(1)[0]
        query = {"room_id": stay["room_id"], "from": stay["check_in"], "to": stay["check_out"]}
        for _ in range(b.samples):
            headers = auth | {"Idempotency-Key": uuid.uuid4().hex}
            answer = await http.post("/api/v1/reservations", headers=headers, json=stay)
            began = time.perf_counter()
            answer.raise_for_status()
            await _until(lambda: _booked(http, query, 1), "the nights booked")
            applied.add(time.perf_counter() - began, 200)
            await http.delete(f"/api/v1/reservations/{answer.json()['reservation_id']}", headers=auth)
            # The cancellation lands too, so the next sample starts from a free night.
            await _until(lambda: _booked(http, query, 0), "the nights free again")
    raw = await asyncio.to_thread(_raw_kafka_latency, b.stack.bootstrap_servers, b.samples)
    b.say(f"  201 → booked p50 {applied.percentile(0.5):.1f} ms; raw Kafka p50 {raw.percentile(0.5):.1f} ms")
    return {"applied": applied.summary(), "raw_kafka_produce_consume": raw.summary()}


async def _booked(http: httpx.AsyncClient, query: dict[str, str], count: int) -> bool:
    night = (await http.get("/api/v1/availability", params=query)).json()["nights"][0]
    return bool(night["booked"] == count and night["held"] == 0)


def _raw_kafka_latency(bootstrap: str, count: int) -> Samples:
    """kafka-python produce → consume on the same broker, one message at a time (acks=all)."""
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    out = Samples()
    try:
        producer.send(topic, b"warm-up").get(timeout=60)
        deadline = time.monotonic() + 60
        while not consumer.poll(timeout_ms=200) and time.monotonic() < deadline:
            pass
        for _ in range(count):
            began = time.perf_counter()
            producer.send(topic, b"x").get(timeout=30)
            while not consumer.poll(timeout_ms=100):
                pass
            out.add(time.perf_counter() - began, 200)
    finally:
        consumer.close()
        producer.close()
    return out


async def signup_login(b: Bench) -> dict[str, Any]:
    """Sign-up and login latency (the password hash dominates), vs a JWKS GET."""
    signups, logins, jwks = Samples(), Samples(), Samples()
    async with client(b.gateway) as http:
        for _ in range(max(2, b.samples // 10)):
            email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
            began = time.perf_counter()
            answer = await http.post(
                "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "display_name": "B"}
            )
            signups.add(time.perf_counter() - began, answer.status_code)
            began = time.perf_counter()
            await _login(http, email)
            logins.add(time.perf_counter() - began, 200)
    async with client(b.stack.url("auth")) as http:
        for _ in range(b.samples):
            began = time.perf_counter()
            answer = await http.get("/.well-known/jwks.json")
            jwks.add(time.perf_counter() - began, answer.status_code)
    env = b.stack.service_env("auth")
    b.say(f"  sign-up p50 {signups.percentile(0.5):.0f} ms, login p50 {logins.percentile(0.5):.0f} ms")
    return {
        "signup": signups.summary(),
        "login": logins.summary(),
        "jwks_get": jwks.summary(),
        "hash": {k: env.get(f"AUTH_PASSWORD_HASH_{k}", "default") for k in ("TIME_COST", "MEMORY_KIB")},
    }


async def idle(b: Bench) -> dict[str, Any]:
    """CPU share of one core of each process while nothing happens, and its memory."""
    names = [*SERVICES, *b.stack.kafka_names]
    pids = b.pids(*names)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(b.idle_window)
    share = {
        name: round(100 * (cpu_seconds(pid) - before[name]) / b.idle_window, 2) for name, pid in pids.items()
    }
    b.say(f"  idle CPU (% of a core): {share}")
    return {
        "cpu_percent_of_one_core": share,
        "services_total_percent": round(sum(v for k, v in share.items() if k in SERVICES), 2),
        "rss_mib": {name: round(rss_mib(pid), 1) for name, pid in pids.items()},
    }


FIGURES = {
    "idle": idle,
    "hop": hop,
    "open_breaker": open_breaker,
    "reservations": reservations,
    "booked_after_201": booked_after_201,
    "signup_login": signup_login,
}

__all__ = ["FIGURES", "Bench"]
