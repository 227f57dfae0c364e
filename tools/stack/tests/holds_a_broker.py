"""Not collected by the suite (no ``test_`` prefix): run by ``test_no_leaks`` in a pytest of its own.

It takes the session's real ``kafka_broker`` fixture (root ``conftest.py``), says where the
broker is, then holds it until that pytest is killed.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from stack.kafka import KafkaBroker


def test_hold_the_broker_until_killed(kafka_broker: KafkaBroker) -> None:
    report = {"pid": kafka_broker.pid, "ports": [kafka_broker.port, kafka_broker.controller_port]}
    Path(os.environ["HOLDS_A_BROKER_REPORT"]).write_text(json.dumps(report), encoding="utf-8")
    threading.Event().wait(900)  # the killing test ends this long before
