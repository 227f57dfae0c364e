"""The DLQ command line: clear errors, quickly, before or instead of a traceback."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from common.messaging import dlq
from common.messaging.dlq import main


def test_only_dlq_topics_are_accepted(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["redrive", "room.reservations", "--bootstrap", "127.0.0.1:1"])
    assert exit_info.value.code == 2
    assert "not a dead-letter topic" in capsys.readouterr().err


def test_an_unreachable_broker_is_one_clear_line_within_seconds(capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket is closed
    began = time.monotonic()
    assert main(["list", "room.reservations.dlq", "--bootstrap", f"127.0.0.1:{port}"]) == 1
    took = time.monotonic() - began
    err = capsys.readouterr().err
    assert f"error: no Kafka broker answers at 127.0.0.1:{port} within 3 s" in err
    assert "Traceback" not in err
    # Bounded by the connect timeout (3 s), not by kafka-python's defaults (tens of seconds).
    assert took < 15, f"gave up after {took:.1f} s"


def test_a_redrive_waits_for_a_slow_transaction_coordinator_but_not_for_a_missing_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first redrive on a broker makes it create __transaction_state; on a loaded machine
    # that outlasted the producer's usual 5 s max_block_ms, which also bounds init_transactions.
    made: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def create_producer(bootstrap: str, client_id: str, **overrides: Any) -> Any:
        made.update(overrides)
        raise Stop

    monkeypatch.setattr(dlq, "create_producer", create_producer)
    with pytest.raises(Stop):
        dlq.redrive("127.0.0.1:1", "room.reservations.dlq")
    assert made["max_block_ms"] >= 60_000
    assert made["bootstrap_timeout_ms"] == dlq.CONNECT_TIMEOUT_MS  # an absent broker: still seconds
