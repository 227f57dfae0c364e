"""Fixtures shared by every test in the repository: the real Apache Kafka broker, and the
databases (SQLite files, or databases on a real PostgreSQL server).

The broker starts lazily, once per pytest session (per xdist worker), the first time a test
asks for ``kafka_broker`` or ``kafka_bootstrap``; sessions that never ask pay nothing. It runs
on free ports with its data in the session's temp folder, so it never clashes with a broker
started by ``make up``. The jars are cached in ``<repo>/.run/kafka/libs`` (or ``$KAFKA_HOME``).
A module that asks for ``kafka_cluster`` gets a 3-broker cluster of its own (module scope).
Tests that use these fixtures get the ``kafka`` marker automatically (``-m "not kafka"``).

Databases: a test that asks for ``new_database`` runs twice, ``[sqlite]`` and ``[postgres]``
(``db_engine``). The PostgreSQL server (Debian's binaries, ``stack.postgres``) starts lazily,
once per session, in a temp folder on a free port, and dies with the session however it dies;
each test gets fresh databases on it (pytest-postgresql's ``DatabaseJanitor``), dropped after
it. Its tests get the ``postgres`` marker (``-m "not postgres"`` runs SQLite only).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from common.messaging import AvroCodec
from common.testing.events import EventPublisher
from stack.kafka import KafkaBroker, default_run_dir, ensure_kafka_libs
from stack.kafka_cluster import KafkaCluster
from stack.ports import free_port_block
from stack.postgres import PostgresServer

_KAFKA_FIXTURES = frozenset({"kafka_broker", "kafka_bootstrap", "kafka_cluster"})
BROKER_START_TIMEOUT_S = 240  # a JVM on a loaded 2-core machine; ~5-15 s otherwise
POSTGRES_START_TIMEOUT_S = 240  # initdb + start: ~3 s on a quiet machine, 10-20 s on a loaded one
DB_ENGINES = ("sqlite", "postgres")

NewDatabase = Callable[[str], str]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the broker with ``kafka``, and PostgreSQL with ``postgres``."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if _KAFKA_FIXTURES & fixtures:
            item.add_marker(pytest.mark.kafka)
        callspec = getattr(item, "callspec", None)
        engine = callspec.params.get("db_engine") if callspec is not None else None
        if engine == "postgres" or "postgres_server" in fixtures:
            item.add_marker(pytest.mark.postgres)


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


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A 3-node KRaft cluster (each node broker and controller, 127.0.0.1, free ports) for one
    test module: topics default to 3 replicas with ``min.insync.replicas=2``.

    Module-scoped (3 JVMs cost a lot on 2 cores): tests of the module may kill and restart
    nodes (``cluster.broker(2).kill()``, ``cluster.start()``); each test gets every node
    running again, and the cluster is stopped after the module.
    """
    libs = ensure_kafka_libs(default_run_dir())
    port = free_port_block(6)  # 3 nodes x (client, controller), below the ephemeral range
    cluster = KafkaCluster(
        tmp_path_factory.mktemp("kafka-cluster"),
        nodes=3,
        port=port,
        libs_dir=libs,
        max_heap="384m",
        min_heap="128m",
    )
    cluster.start(timeout=BROKER_START_TIMEOUT_S)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _kafka_cluster_running(request: pytest.FixtureRequest) -> None:
    # A test that killed nodes and then failed must not break the tests after it.
    if "kafka_cluster" in request.fixturenames:
        cluster: KafkaCluster = request.getfixturevalue("kafka_cluster")
        cluster.start(timeout=BROKER_START_TIMEOUT_S)


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


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (127.0.0.1, a free port, data in a temp folder).

    Started on first use, stopped (its folder removed) at the end of the session; it dies with
    the session however the session dies (``stack.postgres``). Installs Debian's ``postgresql``
    first when its binaries are missing and we are root, else fails saying how to install it.
    """
    server = PostgresServer.ephemeral(free_port_block(1))
    server.start(timeout=POSTGRES_START_TIMEOUT_S)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=DB_ENGINES)
def db_engine(request: pytest.FixtureRequest) -> str:
    """The database engine of this run of the test: ``sqlite`` (the default one) or ``postgres``."""
    engine: str = request.param
    return engine


@pytest.fixture
def new_postgres_database(postgres_server: PostgresServer) -> Iterator[NewDatabase]:
    """``new_postgres_database("room")``: the URL of a fresh database on the session's server,
    created and (after the test) dropped by pytest-postgresql's ``DatabaseJanitor``."""
    janitors: list[DatabaseJanitor] = []

    def make(name: str) -> str:
        unique = f"{name}_{uuid.uuid4().hex[:8]}"
        janitor = DatabaseJanitor(
            user=postgres_server.user, host=postgres_server.host, port=postgres_server.port, dbname=unique
        )
        janitor.init()
        janitors.append(janitor)
        return postgres_server.url(unique)

    yield make
    for janitor in reversed(janitors):
        janitor.drop()  # ends the connections a test left open first


@pytest.fixture
def new_database(db_engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> NewDatabase:
    """``new_database("room")``: the URL of a fresh, empty database of the test's engine:
    a SQLite file in the test's temp folder, or a database on the session's PostgreSQL."""
    if db_engine == "postgres":
        on_postgres: NewDatabase = request.getfixturevalue("new_postgres_database")
        return on_postgres

    def make(name: str) -> str:
        return f"sqlite:///{tmp_path / f'{name}_{uuid.uuid4().hex[:8]}.db'}"

    return make
