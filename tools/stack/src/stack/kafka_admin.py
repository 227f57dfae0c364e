"""Admin helpers for the stack's brokers: "is this broker registered?" and creating topics."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient

__all__ = ["BROKER_DEFAULT", "DLQ_SUFFIX", "broker_answers", "ensure_topics"]

log = logging.getLogger("stack.kafka")

DLQ_SUFFIX = ".dlq"
BROKER_DEFAULT = -1
"""A replication factor of -1 asks the broker for its ``default.replication.factor`` (KIP-464):
1 on a single broker, 3 on the stack's 3-broker cluster."""


class _AdminClient(KafkaAdminClient):  # type: ignore[misc]
    """KafkaAdminClient that does not leak its IO thread when bootstrapping fails.

    kafka-python 3.0 starts a daemon IO thread before bootstrapping and never stops it when
    the constructor raises; polling a starting broker would pile those threads up.
    """

    def __init__(self, **configs: Any) -> None:
        try:
            super().__init__(**configs)
        except BaseException:
            client = getattr(self, "_client", None)
            net = getattr(self, "_net", None)
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
            if net is not None:
                with contextlib.suppress(Exception):
                    net.stop()
            raise


@contextlib.contextmanager
def _admin(bootstrap: str, timeout: float) -> Iterator[Any]:
    timeout_ms = max(int(timeout * 1000), 500)
    admin = _AdminClient(
        bootstrap_servers=bootstrap,
        client_id="stack-admin",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        yield admin
    finally:
        admin.close()


def broker_answers(bootstrap: str, timeout: float, node_id: int) -> bool:
    """True once the broker at ``bootstrap`` serves metadata and node ``node_id`` is registered
    and unfenced."""
    try:
        with _admin(bootstrap, timeout) as admin:
            cluster = admin.describe_cluster()
    except (kafka_errors.KafkaError, OSError) as exc:
        log.debug("broker not ready yet: %s", exc)
        return False
    return any(
        b.get("broker_id") == node_id and not b.get("is_fenced", False) for b in cluster.get("brokers", [])
    )


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 3,
    with_dlq: bool = True,
    timeout: float = 30.0,
    replication_factor: int = BROKER_DEFAULT,
) -> list[str]:
    """Create the topics (and each one's ``<topic>.dlq`` twin) if missing; idempotent.

    Existing topics are left as they are. Returns every ensured topic name once the broker's
    metadata shows all of them with a leader for every partition. Retriable errors (broker
    still starting, leader moving) are retried until ``timeout``. The replication factor is
    the broker's default unless given.
    """
    names: list[str] = []
    for topic in topics:
        wanted = [topic]
        if with_dlq and not topic.endswith(DLQ_SUFFIX):
            wanted.append(topic + DLQ_SUFFIX)
        names.extend(n for n in wanted if n not in names)
    if not names:
        return []

    deadline = time.monotonic() + timeout
    spec = {n: {"num_partitions": partitions, "replication_factor": replication_factor} for n in names}
    while True:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise kafka_errors.KafkaTimeoutError("no time left")
            with _admin(bootstrap, min(remaining, 10.0)) as admin:
                result = admin.create_topics(
                    spec, timeout_ms=int(min(remaining, 10.0) * 1000), raise_errors=False
                )
                for entry in result.get("topics", []):
                    error = kafka_errors.for_code(entry.get("error_code", 0))
                    if error in (kafka_errors.NoError, kafka_errors.TopicAlreadyExistsError):
                        continue
                    raise error(f"{entry.get('name')}: {entry.get('error_message')}")
                remaining_ms = max(int((deadline - time.monotonic()) * 1000), 1)
                admin.wait_for_topics(names, timeout_ms=remaining_ms)
                return names
        except (kafka_errors.KafkaError, OSError) as exc:
            retriable = isinstance(exc, OSError) or getattr(exc, "retriable", False)
            if not retriable:
                raise
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"topics {names} not ready on {bootstrap} within {timeout:.0f} s: {exc}"
                ) from exc
            log.debug("ensure_topics retrying: %s", exc)
            time.sleep(0.2)
