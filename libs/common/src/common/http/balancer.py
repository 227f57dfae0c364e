"""Client-side load balancing over an upstream's instances, with outlier ejection (Envoy's model).

- **Picking.** ``least-outstanding`` (default): the instance with the fewest calls in flight
  from this client, ties broken in turn; a slow instance gets less. ``round-robin``: in turn.
  A retry avoids the instances the call already tried while another one is in rotation.
- **Outlier detection.** ``consecutive_failures`` failed attempts in a row (connect errors,
  broken connections, timeouts, 5xx that are not a passed-on problem: the breaker's verdicts)
  eject the instance for ``base_ejection_s`` x the number of times it was ejected in a row
  (capped at ``max_ejection_s``). A success ends the row.
- **Re-admission.** When the ejection ends, one probe ``GET <probe_path>`` (the callee's
  readiness) decides: 2xx puts it back, anything else ejects it again, for longer. Without a
  probe path it simply comes back and the next calls judge it.
- **Never the last one.** The last instance in rotation is never ejected: the circuit breaker
  (one per upstream, ``common.http.breaker``) judges the upstream as a whole. That is also why a
  failed attempt counts against the breaker only when no other instance is in rotation
  (``record`` says so): one dead instance of two must not open the circuit to the healthy one.

Like the breaker, ``pick`` and ``record`` never await, so no lock is needed under asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from common.http.discovery import Endpoint
from common.metrics import UPSTREAM_EJECTIONS, UPSTREAM_INSTANCES

log = logging.getLogger(__name__)

Strategy = Literal["least-outstanding", "round-robin"]
InstanceStateName = Literal["in", "ejected", "probing"]
# Sends the re-admission probe to one instance; True when it may take calls again.
Probe = Callable[[Endpoint], Awaitable[bool]]


@dataclass(frozen=True)
class OutlierPolicy:
    """When an instance is taken out of rotation and how it gets back (Envoy's knobs)."""

    consecutive_failures: int = 3
    base_ejection_s: float = 5.0
    max_ejection_s: float = 60.0
    probe_path: str | None = "/health/ready"
    strategy: Strategy = "least-outstanding"

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be at least 1")
        if not 0 < self.base_ejection_s <= self.max_ejection_s:
            raise ValueError("need 0 < base_ejection_s <= max_ejection_s")


class Instance:
    """One instance and what the balancer knows about it."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.in_flight = 0
        self.failures = 0  # in a row
        self.ejections = 0  # in a row: the n-th ejection lasts n x base
        self.ejected_until: float | None = None
        self.probing = False

    @property
    def state(self) -> InstanceStateName:
        if self.probing:
            return "probing"
        return "ejected" if self.ejected_until is not None else "in"


class Balancer:
    """Picks an instance of ``upstream`` per attempt and ejects the failing ones."""

    def __init__(
        self,
        upstream: str,
        policy: OutlierPolicy | None = None,
        *,
        service: str = "",
        probe: Probe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.policy = policy or OutlierPolicy()
        self._service = service
        self._probe = probe
        self._clock = clock
        self._instances: dict[Endpoint, Instance] = {}
        self._turn = 0
        self._probes: set[asyncio.Task[None]] = set()

    @property
    def instances(self) -> list[Instance]:
        return list(self._instances.values())

    def update(self, endpoints: Sequence[Endpoint]) -> None:
        """Follow the discovery source: new instances join, gone ones leave (state kept for the rest)."""
        if list(self._instances) == list(endpoints):
            return
        known = self._instances
        self._instances = {e: known.get(e) or Instance(e) for e in endpoints}
        self._export()

    def pick(self, avoid: Collection[Instance] = ()) -> Instance:
        """The instance for the next attempt; ``avoid``: the ones this call already tried."""
        self._readmit_due()
        in_rotation = [i for i in self._instances.values() if i.state == "in"]
        # All out (possible only when discovery changed under us): any instance beats none.
        candidates = [i for i in in_rotation if i not in avoid] or in_rotation or self.instances
        if not candidates:
            raise LookupError(f"no instance of {self.upstream} is known")
        self._turn += 1
        start = self._turn % len(candidates)
        ordered = candidates[start:] + candidates[:start]  # in turn, from a moving start
        if self.policy.strategy == "round-robin":
            return ordered[0]
        return min(ordered, key=lambda i: i.in_flight)  # min keeps the first of equals

    def has_alternative(self, tried: Collection[Instance]) -> bool:
        """Is an instance in rotation that this call has not tried yet?"""
        return any(i.state == "in" and i not in tried for i in self._instances.values())

    def record(self, instance: Instance, *, ok: bool | None) -> bool:
        """An attempt's verdict (as the breaker's). Returns whether the breaker should count it.

        A failure counts against the upstream as a whole only when no other instance is in
        rotation; while one is, it is this instance's problem, and the ejection deals with it.
        """
        if ok is None:
            return True  # the breaker gets "no verdict" anyway
        if ok:
            instance.failures = 0
            instance.ejections = 0
            return True
        others = any(i is not instance and i.state == "in" for i in self._instances.values())
        if instance.endpoint not in self._instances or instance.state != "in":
            return not others  # already out (or gone): its stragglers change nothing
        instance.failures += 1
        if others and instance.failures >= self.policy.consecutive_failures:
            self._eject(instance)
        return not others

    def states(self) -> dict[str, InstanceStateName]:
        """Each instance's state by name, for ``/health/ready``."""
        return {i.endpoint.name: i.state for i in self._instances.values()}

    async def aclose(self) -> None:
        """Cancel re-admission probes still running."""
        for task in list(self._probes):
            task.cancel()
        if self._probes:
            await asyncio.gather(*self._probes, return_exceptions=True)

    def _eject(self, instance: Instance) -> None:
        instance.ejections += 1
        seconds = min(self.policy.max_ejection_s, self.policy.base_ejection_s * instance.ejections)
        instance.ejected_until = self._clock() + seconds
        instance.failures = 0
        UPSTREAM_EJECTIONS.labels(service=self._service, upstream=self.upstream).inc()
        log.warning(
            "instance %s of %s ejected for %.0fs",
            instance.endpoint.name,
            self.upstream,
            seconds,
            extra={"upstream": self.upstream, "instance": instance.endpoint.name},
        )
        self._export()

    def _readmit_due(self) -> None:
        now = self._clock()
        for instance in self._instances.values():
            if instance.ejected_until is None or instance.probing or now < instance.ejected_until:
                continue
            if self._probe is None or self.policy.probe_path is None:
                self._readmit(instance)
                continue
            instance.probing = True
            task = asyncio.get_running_loop().create_task(self._run_probe(instance))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def _run_probe(self, instance: Instance) -> None:
        assert self._probe is not None
        try:
            healthy = await self._probe(instance.endpoint)
        except Exception as exc:  # a probe that breaks is a failed probe
            log.info("probe of %s failed: %s", instance.endpoint.name, exc)
            healthy = False
        finally:
            instance.probing = False
        if healthy:
            self._readmit(instance)
        else:
            self._eject(instance)

    def _readmit(self, instance: Instance) -> None:
        instance.ejected_until = None
        instance.failures = 0
        log.info(
            "instance %s of %s is back in rotation",
            instance.endpoint.name,
            self.upstream,
            extra={"upstream": self.upstream, "instance": instance.endpoint.name},
        )
        self._export()

    def _export(self) -> None:
        in_rotation = sum(i.state == "in" for i in self._instances.values())
        UPSTREAM_INSTANCES.labels(service=self._service, upstream=self.upstream).set(in_rotation)
