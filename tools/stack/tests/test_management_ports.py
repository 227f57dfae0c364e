"""The stack gives every service a management port (``/metrics``, internal docs) and checks it is free."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from stack.errors import PortInUseError
from stack.ports import check_ports_free, free_port_block, port_in_use
from stack.runner import Stack
from stack.services import SERVICE_NAMES, service_env, spec


def test_each_service_gets_its_management_port_and_the_loopback_host_names(tmp_path: Path) -> None:
    env = service_env(spec("room"), base_port=8000, run_dir=tmp_path, bootstrap_servers="x:1", smtp_port=1025)

    assert env["ROOM_MANAGEMENT_PORT"] == "9003"
    assert env["ROOM_MANAGEMENT_HOST"] == "127.0.0.1"
    assert json.loads(env["ROOM_ALLOWED_HOSTS"]) == ["127.0.0.1", "localhost"]


def test_management_urls_and_ports_follow_the_base_port(tmp_path: Path) -> None:
    stack = Stack(tmp_path, base_port=18000, kafka_port=19092, smtp_port=11025, say=None)

    assert stack.management_url("room") == "http://127.0.0.1:19003"
    ports = stack.ports()
    assert {ports[f"{name} management"] for name in SERVICE_NAMES} == set(range(19000, 19006))
    assert len(set(ports.values())) == len(ports)  # no port is wanted twice
    assert stack.service_env("gateway")["GATEWAY_MANAGEMENT_PORT"] == "19000"


def test_a_taken_management_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"{taken} \\(room management\\)"):
            check_ports_free({"room management": taken})


def test_a_free_block_has_its_mirror_block_free_too() -> None:
    # Hold the mirrors of most candidate bases: the block returned must avoid every one.
    held: list[socket.socket] = []
    try:
        for port in range(21_000, 21_040):
            sock = socket.socket()
            sock.bind(("127.0.0.1", port + 1000))
            sock.listen()
            held.append(sock)
        for _ in range(50):
            base = free_port_block(10, low=20_990, high=22_060, mirrors=(1000,))
            assert not any(port_in_use(base + 1000 + i) for i in range(10)), base
    finally:
        for sock in held:
            sock.close()
