"""``stack up --instances``: names, ports and environments of several instances (no process started).

The running behaviour (balancing, failover, shared partitions) is proven by tests/failover.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.cli import _parser
from stack.errors import StackError
from stack.instances import instance_name, parse_instances, split_name
from stack.runner import Stack


def test_counts_are_parsed_and_bad_ones_are_named() -> None:
    assert parse_instances("room=2, notification=3,") == {"room": 2, "notification": 3}
    bad_ones = [("room", "<service>="), ("billing=2", "one of"), ("room=x", "whole"), ("room=10", "between")]
    for bad, why in bad_ones:
        with pytest.raises(ValueError, match=why):
            parse_instances(bad)
    with pytest.raises(SystemExit):  # argparse's usage error, not a traceback
        _parser().parse_args(["up", "--instances", "room=0"])
    assert _parser().parse_args(["up", "--instances", "room=2"]).instances == {"room": 2}


def test_the_first_instance_keeps_the_plain_name() -> None:
    assert [instance_name("room", n) for n in (1, 2, 3)] == ["room", "room-2", "room-3"]
    assert split_name("room-2") == ("room", 2)
    assert split_name("room") == ("room", 1)
    assert split_name("kafka") == ("kafka", 1)
    assert split_name("room-migrate") == ("room-migrate", 1)


def test_instances_get_their_own_ports_and_every_caller_lists_them_all(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path,
        base_port=18000,
        kafka_port=19092,
        smtp_port=11025,
        instances={"room": 2, "notification": 2, "auth": 2},
        say=None,
    )
    assert stack.service_names == [
        *("gateway", "auth", "auth-2", "member", "room", "room-2"),
        *("inventory", "notification", "notification-2"),
    ]
    assert stack.instances_of("room") == ["room", "room-2"]
    assert (stack.url("room"), stack.url("room-2")) == ("http://127.0.0.1:18003", "http://127.0.0.1:18013")
    assert stack.management_port("room-2") == 19013
    ports = stack.ports()
    assert len(set(ports.values())) == len(ports)  # no port is wanted twice
    assert "room-2 management" in ports

    room2 = stack.service_env("room-2")
    assert (room2["ROOM_PORT"], room2["ROOM_MANAGEMENT_PORT"]) == ("18013", "19013")
    assert room2["ROOM_OUTBOX_RELAY"] == "false"  # one relay per SQLite outbox
    assert "ROOM_OUTBOX_RELAY" not in stack.service_env("room")
    assert "ROOM_DATABASE_URL" not in room2  # the service's default: the same file as room's

    gateway = stack.service_env("gateway")
    assert gateway["GATEWAY_ROOM_URL"] == "http://127.0.0.1:18003,http://127.0.0.1:18013"
    assert gateway["GATEWAY_NOTIFICATION_URL"] == "http://127.0.0.1:18005,http://127.0.0.1:18015"
    assert gateway["GATEWAY_MEMBER_URL"] == "http://127.0.0.1:18002"
    assert room2["ROOM_JWKS_URL"] == (
        "http://127.0.0.1:18001/.well-known/jwks.json,http://127.0.0.1:18011/.well-known/jwks.json"
    )
    # The second instance's migration is its first instance's: it never migrates on its own.
    assert stack._migration(stack._services["room-2"]) is stack._services["room"].migrate


def test_postgres_instances_each_run_a_relay(tmp_path: Path) -> None:
    url = "postgresql+psycopg://room@127.0.0.1:5432/room"
    stack = Stack(tmp_path, instances={"room": 2}, env_overrides={"ROOM_DATABASE_URL": url}, say=None)
    assert "ROOM_OUTBOX_RELAY" not in stack.service_env("room-2")  # FOR UPDATE SKIP LOCKED


def test_instances_of_a_service_not_run_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="does not run: room"):
        Stack(tmp_path, services=["gateway"], instances={"room": 2}, say=None)
