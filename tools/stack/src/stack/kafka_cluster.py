"""Several KRaft nodes on 127.0.0.1 as one Kafka cluster (each node broker and controller).

Node ``i`` (1-based) listens on ``port + 2*(i-1)`` for clients and the next port for the
controller quorum, so one node alone has the same ports as a lone ``KafkaBroker``. With 3
nodes the quorum has 3 voters (it survives one loss) and topics default to 3 replicas with
``min.insync.replicas=2``::

    cluster = KafkaCluster(run_dir, nodes=3, port=9092, libs_dir=ensure_kafka_libs(run_dir))
    cluster.start()
    ensure_topics(cluster.bootstrap_servers, ["reservations"])  # RF 3, min ISR 2
    cluster.broker(2).kill()  # a crash; cluster.start() brings it back
    cluster.stop()

State lives under ``<run_dir>/kafka/cluster-<nodes>/node-<i>`` (a cluster of another size
never reads it), logs in ``<log_dir>/kafka-<i>.log``, pids in ``<pids_dir>/kafka-<i>.pid``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from stack.kafka import KafkaBroker, new_cluster_id
from stack.kafka_jars import Progress, say

__all__ = ["KafkaCluster", "node_ports"]


def node_ports(port: int, controller_port: int | None, node: int) -> tuple[int, int]:
    """(client port, controller port) of node ``node`` (1-based) of a cluster based at ``port``."""
    step = 2 * (node - 1)
    return port + step, (controller_port if controller_port is not None else port + 1) + step


class KafkaCluster:
    """``nodes`` KRaft nodes started, stopped and killed together or one at a time."""

    def __init__(
        self,
        run_dir: Path,
        *,
        nodes: int = 3,
        port: int = 9092,
        controller_port: int | None = None,
        libs_dir: Path | None = None,
        log_dir: Path | None = None,
        pids_dir: Path | None = None,
        max_heap: str = "512m",
        min_heap: str = "256m",
        progress: Progress | None = None,
    ) -> None:
        if nodes < 2:
            raise ValueError("a cluster has 2 or more nodes; use KafkaBroker for one")
        self.run_dir = Path(run_dir)
        self.state_dir = self.run_dir / "kafka" / f"cluster-{nodes}"
        self._progress = progress
        ports = {n: node_ports(port, controller_port, n) for n in range(1, nodes + 1)}
        voters = {n: controller for n, (_, controller) in ports.items()}
        cluster_id = self._cluster_id()
        logs = Path(log_dir) if log_dir is not None else self.run_dir / "logs"
        self.brokers = [
            KafkaBroker(
                self.run_dir,
                port=client,
                controller_port=controller,
                libs_dir=libs_dir,
                log_file=logs / f"kafka-{n}.log",
                max_heap=max_heap,
                min_heap=min_heap,
                progress=progress,
                pid_file=(Path(pids_dir) / f"kafka-{n}.pid") if pids_dir is not None else None,
                node_id=n,
                voters=voters,
                cluster_id=cluster_id,
                state_dir=self.state_dir / f"node-{n}",
            )
            for n, (client, controller) in ports.items()
        ]

    def _cluster_id(self) -> str:
        # Every node is formatted with the same id; kept in a file so a node formatted later
        # (its data folder deleted) still joins the cluster the others formed.
        path = self.state_dir / "cluster.id"
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = new_cluster_id()
        path.write_text(cluster_id + "\n", encoding="utf-8")
        return cluster_id

    # -- addresses and states ----------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """Every node's ``127.0.0.1:<port>``, comma-separated (clients need any one of them)."""
        return ",".join(b.bootstrap_servers for b in self.brokers)

    def broker(self, node_id: int) -> KafkaBroker:
        """Node ``node_id`` (1-based)."""
        return self.brokers[node_id - 1]

    @property
    def is_running(self) -> bool:
        """True while every node runs."""
        return all(b.is_running for b in self.brokers)

    @property
    def running(self) -> list[KafkaBroker]:
        """The nodes running now."""
        return [b for b in self.brokers if b.is_running]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Start every node that is not running and return once each is registered.

        All are launched before any is waited for: a node registers only once a majority of
        the quorum runs. On failure the nodes this call started are stopped again.
        """
        starting = self.start_all(self.brokers, timeout)
        if starting:
            names = ", ".join(b.name for b in starting)
            say(self._progress, f"Kafka cluster ready on {self.bootstrap_servers} (started {names})")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every node at once (SIGTERM, SIGKILL after ``timeout``).

        Together rather than one by one: the last nodes of a quorum that lost its majority
        cannot shut down in a controlled way and would each wait for the timeout.
        """
        self.stop_all(self.brokers, timeout)

    def kill(self) -> None:
        """SIGKILL every node."""
        for b in self.brokers:
            b.kill()

    @staticmethod
    def start_all(brokers: Sequence[KafkaBroker], timeout: float) -> list[KafkaBroker]:
        """Start those of ``brokers`` that are not running; the ones it started.

        All are launched before any is waited for. On failure the ones it started are stopped.
        """
        starting = [b for b in brokers if not b.is_running]
        started: list[KafkaBroker] = []
        try:
            deadlines = []
            for b in starting:
                deadlines.append(b.launch(timeout))
                started.append(b)
            for b, deadline in zip(starting, deadlines, strict=True):
                b.wait_ready(deadline, timeout)
        except BaseException:
            KafkaCluster.stop_all(started, 10)
            raise
        return starting

    @staticmethod
    def stop_all(brokers: Sequence[KafkaBroker], timeout: float = 20.0) -> None:
        """Stop ``brokers`` concurrently (SIGTERM, SIGKILL after ``timeout``)."""
        threads = [threading.Thread(target=b.stop, args=(timeout,), name=f"{b.name}-stop") for b in brokers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        states = ", ".join(f"{b.name}: {b.pid or 'stopped'}" for b in self.brokers)
        return f"KafkaCluster({self.bootstrap_servers}; {states})"
