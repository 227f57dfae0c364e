"""No overbooking under concurrency: 40 holds race for the last unit through a real HTTP server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from common.db import Database
from inventory_service.adapters.orm import Hold
from inventory_service.app import create_app
from inventory_service.settings import InventorySettings

from .conftest import day, wait_for

RACERS = 40


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn (lifespan included) on a free local port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout=30, what="uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_forty_concurrent_holds_for_the_last_unit_exactly_one_wins(
    app_settings: InventorySettings,
    db: Database,
    add_room,
    counts,
    room_id: str,
    room_headers: Callable[[], dict[str, str]],
) -> None:
    add_room(room_id, capacity=2, days=3)
    with serve(create_app(app_settings)) as base_url:
        # Night 1 has one unit left; nights 0 and 2 have two, so every racer must win all three
        # nights or none: a partial hold would show up as an extra count on night 0 or 2.
        prior = {
            "reservation_id": "res-prior",
            "room_id": room_id,
            "check_in": str(day(1)),
            "check_out": str(day(2)),
        }
        assert httpx.post(f"{base_url}/internal/holds", json=prior, headers=room_headers()).status_code == 201

        start = threading.Barrier(RACERS)

        def race(i: int) -> httpx.Response:
            body = {
                "reservation_id": f"res-{i}",
                "room_id": room_id,
                "check_in": str(day(0)),
                "check_out": str(day(3)),
            }
            headers = room_headers()
            start.wait(timeout=60)  # every request leaves together
            return httpx.post(f"{base_url}/internal/holds", json=body, headers=headers, timeout=60)

        with ThreadPoolExecutor(RACERS) as pool:
            responses = list(pool.map(race, range(RACERS)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * (RACERS - 1), statuses
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["detail"] == f"no availability for room {room_id} on {day(1).isoformat()}"
    # Consistent afterwards: the winner's nights plus the prior hold, nothing more, nothing less.
    assert counts(room_id, 3) == [(1, 0), (2, 0), (1, 0)]
    with db.read() as session:
        held = session.scalar(select(func.count()).select_from(Hold).where(Hold.room_id == room_id))
    assert held == 2
