"""How this system makes Kafka clients: the event producer (durable, ordered, quick to fail),
plus consumer and admin clients that don't leak a thread when Kafka is unreachable.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

# Short enough that "Kafka is down" surfaces in seconds (the relay then backs off and retries
# the rows itself), long enough for a healthy local broker under load.
REQUEST_TIMEOUT_MS = 5_000
DELIVERY_TIMEOUT_MS = 10_000  # must be >= linger_ms + request_timeout_ms
MAX_BLOCK_MS = 5_000  # how long send() may wait for metadata when the broker is unreachable
RECONNECT_BACKOFF_MAX_MS = 1_000  # default 30 s would delay recovery after a broker restart

log = logging.getLogger(__name__)


def create_producer(bootstrap: str, client_id: str, **overrides: Any) -> KafkaProducer:
    """A ``KafkaProducer`` for events: raw bytes in, ``acks=all``, idempotent.

    Raises (after ``bootstrap_timeout_ms``) if no broker answers: callers retry.
    """
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        # Acknowledged = written to every in-sync replica: an acked event survives a broker loss.
        "acks": "all",
        # The broker drops the duplicates that internal retries would otherwise create, and
        # keeps order per partition even with several batches in flight (at most 5).
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        # Retry transient errors until delivery_timeout_ms; the relay retries beyond that.
        "retries": 2**31 - 1,
        "linger_ms": 5,  # a few ms of batching: many events per request under load
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        "delivery_timeout_ms": DELIVERY_TIMEOUT_MS,
        "max_block_ms": MAX_BLOCK_MS,
        "bootstrap_timeout_ms": MAX_BLOCK_MS,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        # Topics are created deliberately (ensure_topics), not by a typo in a producer. Note:
        # kafka-python 3.0.12 does not pass this on to its metadata requests, so in practice
        # the broker's auto.create.topics.enable decides.
        "allow_auto_create_topics": False,
    }
    config.update(overrides)
    return KafkaProducer(**config)


def close_producer(producer: Any, timeout: float) -> None:
    """Close ``producer`` within ``timeout`` seconds, dropping what it has not delivered by then.

    kafka-python 3.0's ``close(timeout)`` flushes first and raises when that flush times out,
    leaving its IO thread running (and ``__del__`` trying again later); a relay replacing a
    stuck producer after every failed round would pile threads up. So stop the thread here.
    """
    try:
        producer.close(timeout=timeout)
    except Exception as exc:
        log.debug("producer did not close cleanly (%s); forcing it", exc)
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            with contextlib.suppress(Exception):
                sender.force_close()  # fails its pending batches, closes its connections
                sender.join(5)
        producer._closed = True  # what close() sets at its end; __del__ then does nothing


def _stop_io(client: Any) -> None:
    # kafka-python 3.0 starts an IO thread before bootstrapping and leaves it running when the
    # constructor raises: a service retrying while Kafka is down would pile threads up.
    for name, stop in (("_client", "close"), ("_net", "stop")):
        part = getattr(client, name, None)
        if part is not None:
            with contextlib.suppress(Exception):
                getattr(part, stop)()


class _Consumer(KafkaConsumer):  # type: ignore[misc]
    def __init__(self, *topics: str, **configs: Any) -> None:
        try:
            super().__init__(*topics, **configs)
        except BaseException:
            _stop_io(self)
            raise


class _Admin(KafkaAdminClient):  # type: ignore[misc]
    def __init__(self, **configs: Any) -> None:
        try:
            super().__init__(**configs)
        except BaseException:
            _stop_io(self)
            raise


def new_consumer(**configs: Any) -> KafkaConsumer:
    """A ``KafkaConsumer`` (raw bytes; pass every setting) that cleans up if bootstrap fails."""
    return _Consumer(**configs)


def new_admin(**configs: Any) -> KafkaAdminClient:
    """A ``KafkaAdminClient`` that cleans up if bootstrap fails."""
    return _Admin(**configs)
