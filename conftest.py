"""Fixtures shared by every test in the repository: the real Apache Kafka broker.

The broker starts lazily, once per pytest session (per xdist worker), the first time a test
asks for ``kafka_broker`` or ``kafka_bootstrap``; sessions that never ask pay nothing. It runs
on free ports with its data in the session's temp folder, so it never clashes with a broker
started by ``make up``. The jars are cached in ``<repo>/.run/kafka/libs`` (or ``$KAFKA_HOME``).
Tests that use these fixtures get the ``kafka`` marker automatically (``-m "not kafka"``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.messaging import AvroCodec
from common.testing.events import EventPublisher
from stack.kafka import KafkaBroker, default_run_dir, ensure_kafka_libs
from stack.ports import free_port_block

_KAFKA_FIXTURES = frozenset({"kafka_broker", "kafka_bootstrap"})
BROKER_START_TIMEOUT_S = 240  # a JVM on a loaded 2-core machine; ~5-15 s otherwise


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the broker with ``kafka``."""
    for item in items:
        if _KAFKA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The session's running Kafka broker (KRaft, single node, 127.0.0.1, free ports).

    Tests may stop and start it (to prove nothing is lost); it is running again before each
    test that uses it, and stopped at the end of the session. It dies with the session however
    the session dies (``stack.procs.spawn``), so a killed test run leaks no JVM.
    """
    libs = ensure_kafka_libs(default_run_dir())
    # Two consecutive ports below the ephemeral range: an OS-picked port (bind 0) may be taken
    # by an outgoing connection before the broker binds it.
    port = free_port_block(2)
    controller_port = port + 1
    broker = KafkaBroker(
        tmp_path_factory.mktemp("kafka"), port=port, controller_port=controller_port, libs_dir=libs
    )
    broker.start(timeout=BROKER_START_TIMEOUT_S)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(autouse=True)
def _kafka_broker_running(request: pytest.FixtureRequest) -> None:
    # A test that stopped the broker and then failed must not break the tests after it.
    if "kafka_broker" in request.fixturenames:
        broker: KafkaBroker = request.getfixturevalue("kafka_broker")
        if not broker.is_running:
            broker.start(timeout=BROKER_START_TIMEOUT_S)


@pytest.fixture
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """Bootstrap servers (``"127.0.0.1:<port>"``) of the session's running broker."""
    return kafka_broker.bootstrap_servers


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    """The event codec over ``contracts/events`` (what every service's outbox and consumers use)."""
    return AvroCodec.from_contracts()


@pytest.fixture
def events(kafka_bootstrap: str, codec: AvroCodec) -> Iterator[EventPublisher]:
    """Publishes events into the real topics exactly as a service's outbox relay would."""
    publisher = EventPublisher(kafka_bootstrap, codec)
    yield publisher
    publisher.close()
