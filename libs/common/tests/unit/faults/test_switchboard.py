"""The switchboard: matching, TTL, max_hits, probability, pause and crash, logged and counted."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, NoReturn

import pytest
from prometheus_client import REGISTRY

from common.faults import FaultSpec, NamedFault, Switchboard


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _spec(**fields: Any) -> FaultSpec:
    return FaultSpec.model_validate(fields)


ERROR_ON_HOLDS = _spec(kind="error", where="inbound", match="/internal/holds")


def _injected(service: str, name: str, kind: str) -> float:
    labels = {"service": service, "name": name, "kind": kind}
    return REGISTRY.get_sample_value("faults_injected_total", labels) or 0.0


def test_off_by_default_nothing_is_injected() -> None:
    board = Switchboard("t-off")
    assert board.list() == []
    assert board.hit("inbound", "/internal/holds", "POST") is None
    assert board.paused("relay", "t-off") is None


@pytest.mark.parametrize(
    ("path", "hit"),
    [
        ("/internal/holds", True),
        ("/internal/holds/h1/confirm", True),
        ("/internal/holdsX", False),  # segment boundaries, not a string prefix
        ("/internal", False),
        ("/api/v1/rooms", False),
    ],
)
def test_inbound_switches_match_a_path_prefix(path: str, hit: bool) -> None:
    board = Switchboard("t-match")
    board.set("holds", ERROR_ON_HOLDS)
    assert (board.hit("inbound", path, "GET") is not None) is hit


def test_methods_seam_and_target_must_all_match() -> None:
    board = Switchboard("t-methods")
    board.set(
        "slow-post", _spec(kind="latency", where="upstream", match="member", latency_ms=5, methods=["POST"])
    )
    assert board.hit("upstream", "member", "GET") is None
    assert board.hit("upstream", "inventory", "POST") is None
    assert board.hit("inbound", "member", "POST") is None
    injection = board.hit("upstream", "member", "POST")
    assert injection is not None
    assert injection.name == "slow-post"


def test_a_switch_expires_after_its_ttl_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    board = Switchboard("t-ttl", clock=clock)
    caplog.set_level(logging.WARNING, logger="common.faults")
    switch = board.set("holds", _spec(kind="error", where="inbound", match="/internal/holds", ttl_s=30))
    assert (switch.expires_at - switch.set_at).total_seconds() == 30
    clock.now += 29.9
    assert board.hit("inbound", "/internal/holds") is not None
    clock.now += 0.1
    assert board.hit("inbound", "/internal/holds") is None
    assert board.list() == []
    assert board.get("holds") is None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("set" in m for m in messages) == 1
    assert sum("expired" in m for m in messages) == 1  # not once per later call


def test_max_hits_spends_the_switch_and_every_hit_is_counted() -> None:
    board = Switchboard("t-hits")
    board.set("twice", _spec(kind="error", where="inbound", match="*", max_hits=2))
    before = _injected("t-hits", "twice", "error")
    assert board.hit("inbound", "/a") is not None
    assert board.get("twice").hits == 1  # type: ignore[union-attr]
    assert board.hit("inbound", "/b") is not None
    assert board.hit("inbound", "/c") is None
    assert board.get("twice") is None
    assert _injected("t-hits", "twice", "error") == before + 2


def test_probability_hits_a_share_of_calls_reproducibly_with_a_seeded_rng() -> None:
    def run() -> list[bool]:
        board = Switchboard("t-prob", rng=random.Random(7))
        board.set("some", _spec(kind="error", where="inbound", match="*", probability=0.3))
        return [board.hit("inbound", "/x") is not None for _ in range(1000)]

    first = run()
    assert first == run()  # the same seed, the same calls hit
    assert 250 <= sum(first) <= 350  # about 30 % (seed 7: deterministic, not luck)
    never = Switchboard("t-prob0")
    never.set("none", _spec(kind="error", where="inbound", match="*", probability=0))
    assert all(never.hit("inbound", "/x") is None for _ in range(100))


def test_set_replaces_delete_and_clear_turn_off() -> None:
    board = Switchboard("t-admin")
    board.set("a", ERROR_ON_HOLDS)
    board.hit("inbound", "/internal/holds")
    replaced = board.set("a", _spec(kind="drop", where="upstream", match="member"))
    assert (replaced.kind, replaced.hits) == ("drop", 0)
    board.set("b", ERROR_ON_HOLDS)
    assert [s.name for s in board.list()] == ["a", "b"]
    assert board.delete("a") is True
    assert board.delete("a") is False
    board.clear()
    assert board.list() == []


def test_the_stored_switch_shows_the_default_error_status() -> None:
    assert Switchboard("t-view").set("e", ERROR_ON_HOLDS).status == 503


def test_switches_from_the_environment_are_set_at_start() -> None:
    board = Switchboard("t-env")
    board.load([NamedFault.model_validate({"name": "hold", "kind": "pause", "where": "relay", "match": "*"})])
    assert board.paused("relay", "t-env") is not None


def test_a_pause_holds_the_worker_until_the_switch_is_deleted() -> None:
    board = Switchboard("t-pause")
    board.set("hold", _spec(kind="pause", where="consumer", match="room.inventory"))
    assert board.paused("consumer", "other.group") is None
    assert board.hit("consumer", "room.inventory") is None  # a pause is a state, not a hit
    released = threading.Event()

    def worker() -> None:
        board.hold_while_paused("consumer", "room.inventory", threading.Event(), poll_s=0.01)
        released.set()

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 10  # the worker's stop shows on the switch, like the metric
    while (stored := board.get("hold")) is not None and stored.hits == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stored is not None
    assert stored.hits == 1
    assert not released.wait(0.2)  # still held
    board.delete("hold")
    assert released.wait(10)
    thread.join()
    assert _injected("t-pause", "hold", "pause") == 1  # counted once, not once per poll


def test_a_pause_ends_logged_with_the_stops_it_caused(caplog: pytest.LogCaptureFixture) -> None:
    board = Switchboard("t-pause-log")
    board.set("hold", _spec(kind="pause", where="consumer", match="*"))
    stop = threading.Event()
    held = threading.Thread(
        target=board.hold_while_paused, args=("consumer", "g1", stop), kwargs={"poll_s": 0.01}
    )
    held.start()
    stop.set()
    held.join()
    with caplog.at_level(logging.WARNING, logger="common.faults"):
        board.delete("hold")
    assert "fault switch 'hold' off (deleted) after 1 hits" in caplog.text


def test_a_pause_ends_when_the_worker_is_stopped() -> None:
    board = Switchboard("t-stop")
    board.set("hold", _spec(kind="pause", where="relay", match="*"))
    stop = threading.Event()
    stop.set()
    board.hold_while_paused("relay", "t-stop", stop, poll_s=10)  # returns at once


class Crashed(BaseException):
    pass


def test_crash_point_exits_with_70_only_when_a_crash_switch_matches() -> None:
    codes: list[int] = []

    def fake_exit(code: int) -> NoReturn:
        codes.append(code)
        raise Crashed

    board = Switchboard("t-crash", exit=fake_exit)
    board.set("hold", _spec(kind="pause", where="consumer", match="*"))
    board.crash_point("consumer", "room.x")  # a pause is no crash
    board.set("crash", _spec(kind="crash_after_send", where="consumer", match="room.x", max_hits=1))
    board.crash_point("consumer", "room.y")
    assert codes == []
    with pytest.raises(Crashed):
        board.crash_point("consumer", "room.x")
    assert codes == [70]
    board.crash_point("consumer", "room.x")  # spent: max_hits=1
    assert codes == [70]
