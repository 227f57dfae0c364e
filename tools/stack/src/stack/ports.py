"""Ports and health: is a port taken, a free block of ports, and one readiness probe.

Everything the stack binds is on ``HOST`` (loopback). Free ports come from ``free_port_block``,
never from ``bind(0)`` (see there why).
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from stack.errors import PortInUseError, StackError

__all__ = [
    "HOST",
    "Readiness",
    "check_ports_free",
    "free_port_block",
    "port_in_use",
    "port_open",
    "probe",
]

HOST = "127.0.0.1"


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something listens on ``host:port`` (a TIME_WAIT leftover does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option uvicorn and Kafka use, so a recently closed port reads as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port_block(
    count: int,
    host: str = HOST,
    low: int = 20_000,
    high: int = 32_000,
    *,
    mirrors: Sequence[int] = (),
) -> int:
    """The first of ``count`` consecutive free ports, for stacks on non-default ports (tests).

    Chosen below the kernel's ephemeral range (32768+ on Linux): ports handed out by the OS
    (``bind(0)``) are also what outgoing connections use, so one of them may be taken by a
    client socket between the check and the service binding it. ``mirrors``: offsets of more
    blocks of ``count`` ports that must be free as well (a stack's management ports sit 1,000
    above its service ports); the whole span stays below ``high``.
    """
    rng = random.SystemRandom()
    span = max(mirrors, default=0) + count
    ports = [shift + i for shift in (0, *mirrors) for i in range(count)]
    for _ in range(500):
        first = rng.randrange(low, high - span)
        if not any(port_in_use(first + port, host) for port in ports):
            return first
    raise StackError(f"no {count} consecutive free ports (and their mirrors) found between {low} and {high}")


def check_ports_free(ports: Mapping[str, int], host: str = HOST) -> None:
    """Raise ``PortInUseError`` naming every taken port and what the stack wanted it for."""
    taken = [f"{port} ({what})" for what, port in ports.items() if port_in_use(port, host)]
    if taken:
        raise PortInUseError(
            f"port{'s' if len(taken) > 1 else ''} already in use on {host}: {', '.join(taken)}. "
            "Is a stack already running (`make down` / `uv run stack down`)? "
            "Otherwise stop what holds the port or choose other ports (--base-port, --kafka-port, "
            "--smtp-port)."
        )


@dataclass(frozen=True)
class Readiness:
    """The answer of one ``/health/ready`` probe, summarised for people."""

    ready: bool
    status: int | None
    detail: str
    body: str = ""


def _summarise(status: int, body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return f"{status}"
    checks = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(checks, dict):
        return f"{status}"
    failing = [
        name
        for name, check in checks.items()
        if isinstance(check, dict) and not check.get("ok", True) and check.get("critical", True)
    ]
    return f"{status}: {', '.join(failing)}" if failing else f"{status}"


def probe(url: str, client: httpx.Client | None = None, timeout: float = 3.0) -> Readiness:
    """GET ``<url>/health/ready`` once; never raises."""
    try:
        if client is None:
            response = httpx.get(f"{url}/health/ready", timeout=timeout)
        else:
            response = client.get(f"{url}/health/ready", timeout=timeout)
    except httpx.ConnectError:
        return Readiness(False, None, "not listening")
    except httpx.HTTPError as exc:
        return Readiness(False, None, type(exc).__name__)
    ok = response.status_code == 200
    detail = "ready" if ok else _summarise(response.status_code, response.text)
    return Readiness(ok, response.status_code, detail, response.text)
