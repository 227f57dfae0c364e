"""``stack up --kafka-brokers 3``: names, ports, properties and environments (no process started).

The running behaviour (a broker killed, two killed) is proven by
libs/common/tests/integration/messaging/test_three_brokers_kafka.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.cli import _parser
from stack.errors import StackError
from stack.runner import Stack


def test_three_brokers_get_their_own_names_ports_and_every_client_lists_them_all(tmp_path: Path) -> None:
    stack = Stack(tmp_path, base_port=18000, kafka_port=19092, smtp_port=11025, kafka_brokers=3, say=None)
    assert stack.kafka_names == ["kafka-1", "kafka-2", "kafka-3"]
    assert [n for n in stack.controllable if n.startswith("kafka")] == stack.kafka_names
    ports = stack.ports()
    assert [ports[f"kafka-{n}"] for n in (1, 2, 3)] == [19092, 19094, 19096]
    assert [ports[f"kafka-{n} controller"] for n in (1, 2, 3)] == [19093, 19095, 19097]
    assert len(set(ports.values())) == len(ports)  # no port is wanted twice
    bootstrap = "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert stack.bootstrap_servers == bootstrap
    assert stack.service_env("room")["ROOM_KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    assert [stack.state(n) for n in stack.kafka_names] == ["stopped"] * 3

    node2 = stack.brokers[1]
    props = node2._properties(node2.data_dir)
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert "controller.quorum.bootstrap.servers" not in props
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("3", "2")
    assert props["offsets.topic.replication.factor"] == "3"
    assert len({b.cluster_id for b in stack.brokers}) == 1  # formatted alike
    assert len({b.state_dir for b in stack.brokers}) == 3


def test_one_broker_stays_as_it_was(tmp_path: Path) -> None:
    stack = Stack(tmp_path, kafka_port=19092, say=None)
    assert stack.kafka_names == ["kafka"]
    assert stack.bootstrap_servers == "127.0.0.1:19092"
    props = stack.broker._properties(stack.broker.data_dir)
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("1", "1")
    assert stack.broker.state_dir == tmp_path.resolve() / "kafka"


def test_the_option_takes_a_count() -> None:
    assert _parser().parse_args(["up"]).kafka_brokers == 1
    assert _parser().parse_args(["up", "--kafka-brokers", "3"]).kafka_brokers == 3
    with pytest.raises(SystemExit):  # argparse's usage error, not a traceback
        _parser().parse_args(["up", "--kafka-brokers", "0"])
    with pytest.raises(StackError, match="1 or more"):
        Stack(Path("/nonexistent"), kafka_brokers=0, say=None)
