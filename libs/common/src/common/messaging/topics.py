"""The topic catalogue: which topic each event type is published to.

Topics are named ``<owning service>.<aggregate, plural>``. Events about one aggregate share a
topic *and* a key (the aggregate id), because Kafka orders messages only within a partition:
ReservationCreated and ReservationCancelled of one reservation must never swap places.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from kafka.errors import TopicAlreadyExistsError

from common.messaging.producer import new_admin

log = logging.getLogger(__name__)

TOPIC_FOR_EVENT: Mapping[str, str] = MappingProxyType(
    {
        "UserRegistered": "auth.users",
        "LicenseActivated": "auth.licenses",
        "MemberUpdated": "member.members",
        "ReservationCreated": "room.reservations",
        "ReservationCancelled": "room.reservations",
    }
)
ALL_TOPICS: tuple[str, ...] = tuple(sorted(set(TOPIC_FOR_EVENT.values())))
DLQ_SUFFIX = ".dlq"


def topic_for(event_type: str) -> str:
    """The catalogue topic of ``event_type`` (``KeyError`` if it has none)."""
    return TOPIC_FOR_EVENT[event_type]


def dlq_topic(topic: str) -> str:
    """The dead-letter twin of ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 3,
    *,
    with_dlq: bool = True,
    timeout_s: float = 10.0,
) -> list[str]:
    """Create the topics (and their ``.dlq`` twins) that don't exist yet; return those created.

    Idempotent, so every relay and consumer calls it at start: services don't depend on
    someone having prepared the broker. Raises if the broker can't be reached.
    """
    wanted = set(topics)
    if with_dlq:
        wanted |= {dlq_topic(t) for t in wanted if not t.endswith(DLQ_SUFFIX)}
    timeout_ms = int(timeout_s * 1000)
    admin = new_admin(
        bootstrap_servers=bootstrap,
        client_id="ensure-topics",
        request_timeout_ms=timeout_ms,
        bootstrap_timeout_ms=timeout_ms,
    )
    try:
        missing = sorted(wanted - set(admin.list_topics()))
        if not missing:
            return []
        # Replication factor -1: the broker's default.replication.factor (KIP-464), so one
        # call fits a lone dev broker (1) and a 3-broker cluster (3, with its
        # min.insync.replicas=2) alike; the cluster's operator decides, not each service.
        spec = {name: {"num_partitions": partitions, "replication_factor": -1} for name in missing}
        result = admin.create_topics(spec, timeout_ms=timeout_ms, raise_errors=False)
        for topic in result["topics"]:
            code = topic["error_code"]
            # Another service may have created it a moment ago: that's fine.
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(
                    f"creating topic {topic['name']}: error {code} {topic.get('error_message')}"
                )
        admin.wait_for_topics(missing, timeout_ms=timeout_ms)
        log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        admin.close()
