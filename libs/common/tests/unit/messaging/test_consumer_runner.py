"""The consumer runner never crashes the service when Kafka is absent."""

from __future__ import annotations

import logging
import socket
import threading
import time

from common.messaging import ConsumerRunner

from .test_relay import wait_for


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kafka_absent_at_start_keeps_retrying_and_stops_promptly(store, codec, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="common.messaging.consumer")
    threads_before = threading.active_count()
    db, tables = store
    runner = ConsumerRunner(
        "unit.absent",
        ["nowhere"],
        db,
        tables,
        codec,
        {},
        f"127.0.0.1:{_closed_port()}",
        "unit",
        backoff_base=0.05,
        backoff_cap=0.1,
        consumer_config={"bootstrap_timeout_ms": 300},
    )
    started = time.monotonic()
    runner.start()
    assert time.monotonic() - started < 1  # start() doesn't wait for Kafka
    try:
        wait_for(lambda: "(failure 3)" in caplog.text, what="three failed connection attempts")
        assert "cannot connect to Kafka" in (runner.last_error or "")
        # Logged once as a warning, then quietly: an outage must not flood the logs.
        ours = [r for r in caplog.records if r.name == "common.messaging.consumer"]
        assert [r.levelname for r in ours if r.levelname != "DEBUG"] == ["WARNING"]
        assert runner.running
        assert not runner.healthy
    finally:
        started = time.monotonic()
        runner.stop(timeout=5)
    assert not runner.running
    assert time.monotonic() - started < 5  # at most one short connection attempt
    # kafka-python 3.0 leaks an IO thread per failed client construction unless cleaned up.
    assert threading.active_count() == threads_before
