"""The DLQ command line refuses what isn't a dead-letter topic before touching Kafka."""

from __future__ import annotations

import pytest

from common.messaging.dlq import main


def test_only_dlq_topics_are_accepted(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["redrive", "room.reservations", "--bootstrap", "127.0.0.1:1"])
    assert exit_info.value.code == 2
    assert "not a dead-letter topic" in capsys.readouterr().err
