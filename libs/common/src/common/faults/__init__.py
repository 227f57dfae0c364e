"""Runtime fault injection (off by default): switches that make a seam fail on purpose.

A switch (``FaultSpec``) is set on one service's ``Switchboard`` by ``PUT /admin/faults/{name}``
or at start from ``<PREFIX>_FAULTS``; the seams ask the board: inbound requests
(``FaultMiddleware``), outgoing calls (``FaultTransport``), the outbox relay and the consumers
(``hold_while_paused``, ``crash_point``). docs/patterns/fault-injection.md has the lab.
"""

from common.faults.admin import ADMIN_CALLERS, faults_router
from common.faults.inbound import ADMIN_PREFIX, FaultMiddleware, InjectedFault
from common.faults.spec import FaultKind, FaultList, FaultSeam, FaultSpec, FaultSwitch, NamedFault
from common.faults.switchboard import CRASH_EXIT_CODE, Injection, Switchboard
from common.faults.upstream import FaultTransport, http_transport

__all__ = [
    "ADMIN_CALLERS",
    "ADMIN_PREFIX",
    "CRASH_EXIT_CODE",
    "FaultKind",
    "FaultList",
    "FaultMiddleware",
    "FaultSeam",
    "FaultSpec",
    "FaultSwitch",
    "FaultTransport",
    "InjectedFault",
    "Injection",
    "NamedFault",
    "Switchboard",
    "faults_router",
    "http_transport",
]
