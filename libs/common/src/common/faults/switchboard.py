"""The switchboard: one service's fault switches, asked at every seam "should I fail now?".

Thread-safe (one lock): the request handlers (the event loop), the outbox relay and the
consumers (their own threads) ask the same board. Each switch is logged when it is set and
once when it ends (expired, spent, deleted); each fault it injects is counted in
``faults_injected_total{service,name,kind}``. Expired switches are dropped as soon as anything
asks the board.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NoReturn

from common.faults.spec import ANY, FaultKind, FaultSeam, FaultSpec, FaultSwitch, NamedFault
from common.metrics import FAULTS_INJECTED

log = logging.getLogger("common.faults")

CRASH_EXIT_CODE = 70  # EX_SOFTWARE: what a crash_after_send switch exits with

Exit = Callable[[int], NoReturn]
# What ``hit`` injects by default: the per-call faults (a pause is a state, asked by ``paused``).
INJECTED_KINDS: frozenset[FaultKind] = frozenset({"latency", "error", "hang", "drop", "crash_after_send"})
_CRASH: frozenset[FaultKind] = frozenset({"crash_after_send"})


@dataclass(frozen=True)
class Injection:
    """A fault to inject now: which switch, and what it says."""

    name: str
    spec: FaultSpec


@dataclass
class _Switch:
    name: str
    spec: FaultSpec
    set_at: float
    expires_at: float
    hits: int = 0

    def view(self) -> FaultSwitch:
        fields = self.spec.model_dump()
        if self.spec.kind == "error":
            fields["status"] = self.spec.error_status
        return FaultSwitch(
            **fields,
            name=self.name,
            set_at=datetime.fromtimestamp(self.set_at, UTC),
            expires_at=datetime.fromtimestamp(self.expires_at, UTC),
            hits=self.hits,
        )


def matches(spec: FaultSpec, where: FaultSeam, target: str, method: str | None) -> bool:
    """Does ``spec`` apply to ``target`` (a path, upstream, group) at seam ``where``?"""
    if spec.where != where:
        return False
    if spec.methods is not None and method not in spec.methods:
        return False
    if spec.match == ANY:
        return True
    if where == "inbound":  # a path prefix on segment boundaries: /internal/holds, not /internal/holdsX
        prefix = spec.match.rstrip("/")
        return target == prefix or target.startswith(prefix + "/") or spec.match == "/"
    return target == spec.match


class Switchboard:
    """The fault switches of one service (off until a switch is set)."""

    def __init__(
        self,
        service: str,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        exit: Exit = os._exit,
    ) -> None:
        self.service = service
        self._clock = clock
        # Probability only has to thin the faults out, not be unguessable.
        self._rng = rng or random.Random()  # noqa: S311
        # os._exit, not sys.exit: a crash skips cleanup (no flush, no commit), like a kill -9.
        self._exit = exit
        self._lock = threading.Lock()
        self._switches: dict[str, _Switch] = {}

    # -- the admin side ------------------------------------------------------------------------

    def set(self, name: str, spec: FaultSpec) -> FaultSwitch:
        """Set (or replace) switch ``name``; its TTL starts now, its hits at 0."""
        spec = _plain(spec)
        now = self._clock()
        switch = _Switch(name, spec, set_at=now, expires_at=now + spec.ttl_s)
        with self._lock:
            self._purge(now)
            self._switches[name] = switch
        log.warning(
            "fault switch %r set: %s %s on %s for %d s",
            name, spec.kind, spec.where, spec.match, spec.ttl_s,
            extra={"fault": name, "kind": spec.kind, "where": spec.where},
        )  # fmt: skip
        return switch.view()

    def load(self, faults: Iterable[NamedFault]) -> None:
        """Set the switches a service was started with (``<PREFIX>_FAULTS``)."""
        for fault in faults:
            self.set(fault.name, fault)

    def get(self, name: str) -> FaultSwitch | None:
        with self._lock:
            self._purge(self._clock())
            switch = self._switches.get(name)
            return switch.view() if switch else None

    def list(self) -> list[FaultSwitch]:
        with self._lock:
            self._purge(self._clock())
            return [s.view() for s in self._switches.values()]

    def delete(self, name: str) -> bool:
        """Turn switch ``name`` off; False if there was none."""
        with self._lock:
            self._purge(self._clock())
            switch = self._switches.pop(name, None)
        if switch is not None:
            self._ended(switch, "deleted")
        return switch is not None

    def clear(self) -> None:
        """Turn every switch off."""
        with self._lock:
            ended, self._switches = list(self._switches.values()), {}
        for switch in ended:
            self._ended(switch, "deleted")

    # -- the seams' side -----------------------------------------------------------------------

    def hit(
        self,
        where: FaultSeam,
        target: str,
        method: str | None = None,
        *,
        kinds: Collection[FaultKind] = INJECTED_KINDS,
    ) -> Injection | None:
        """The fault to inject into this call, if a switch says so (counted as one hit)."""
        with self._lock:
            now = self._clock()
            self._purge(now)
            for switch in self._switches.values():
                if switch.spec.kind not in kinds or not matches(switch.spec, where, target, method):
                    continue
                if switch.spec.probability < 1 and self._rng.random() >= switch.spec.probability:
                    return None  # spared this time
                switch.hits += 1
                spent = switch.spec.max_hits is not None and switch.hits >= switch.spec.max_hits
                if spent:
                    del self._switches[switch.name]
                break
            else:
                return None
        FAULTS_INJECTED.labels(self.service, switch.name, switch.spec.kind).inc()
        if spent:
            self._ended(switch, f"spent after {switch.hits} hits")
        return Injection(switch.name, switch.spec)

    def in_force(self, name: str) -> bool:
        """Is switch ``name`` still set (a hang lasts while it is)?"""
        with self._lock:
            self._purge(self._clock())
            return name in self._switches

    def paused(self, where: FaultSeam, target: str) -> Injection | None:
        """The pause switch holding the worker ``target`` at ``where``, if any (not counted)."""
        with self._lock:
            switch = self._pause_switch(where, target)
            return Injection(switch.name, switch.spec) if switch else None

    def hold_while_paused(
        self, where: FaultSeam, target: str, stop: threading.Event, *, poll_s: float = 0.2
    ) -> None:
        """Block the calling worker while a pause switch holds it (or until ``stop`` is set).

        The pause is counted once when the worker stops (a hit of the switch, and in the
        metric), and logged when it moves on.
        """
        with self._lock:
            switch = self._pause_switch(where, target)
            if switch is None:
                return
            switch.hits += 1
            pause = Injection(switch.name, switch.spec)
        FAULTS_INJECTED.labels(self.service, pause.name, pause.spec.kind).inc()
        log.warning("%s %s paused by fault switch %r", where, target, pause.name)
        while not stop.wait(poll_s) and self.paused(where, target) is not None:
            pass
        log.warning("%s %s resumes (pause switch %r ended)", where, target, pause.name)

    def crash_point(self, where: FaultSeam, target: str) -> None:
        """Exit the process here (code 70) if a ``crash_after_send`` switch says so."""
        injection = self.hit(where, target, kinds=_CRASH)
        if injection is None:
            return
        log.critical(
            "fault switch %r: crashing %s %s now (exit %d)", injection.name, where, target, CRASH_EXIT_CODE
        )
        for handler in logging.getLogger().handlers:  # the last words must reach the log file
            handler.flush()
        self._exit(CRASH_EXIT_CODE)

    # -- internals -----------------------------------------------------------------------------

    def _pause_switch(self, where: FaultSeam, target: str) -> _Switch | None:
        """The pause switch holding ``target`` at ``where`` (the caller holds the lock)."""
        self._purge(self._clock())
        for switch in self._switches.values():
            if switch.spec.kind == "pause" and matches(switch.spec, where, target, None):
                return switch
        return None

    def _purge(self, now: float) -> None:
        """Drop expired switches (the caller holds the lock); log each once."""
        for switch in [s for s in self._switches.values() if s.expires_at <= now]:
            del self._switches[switch.name]
            self._ended(switch, "expired")

    def _ended(self, switch: _Switch, why: str) -> None:
        log.warning(
            "fault switch %r off (%s) after %d hits", switch.name, why, switch.hits,
            extra={"fault": switch.name, "kind": switch.spec.kind, "where": switch.spec.where},
        )  # fmt: skip


def _plain(spec: FaultSpec) -> FaultSpec:
    """The spec without a subclass's extra fields (a ``NamedFault`` from the settings)."""
    return FaultSpec(**spec.model_dump(exclude={"name"}))
