"""Client-side discovery: where the instances of one upstream are, from one settings value.

An upstream's URL setting (``ROOM_MEMBER_URL``) is a comma-separated list; each entry is

- ``http://host:port`` (or https): one instance, as written. Several entries, several instances:
  ``http://127.0.0.1:8002,http://127.0.0.1:8012`` is what ``stack up --instances member=2`` sets.
- ``dns+http://name:port``: every address ``name`` resolves to is one instance, looked up again
  every ``refresh_s`` seconds. That is the shape of a Kubernetes headless Service or a compose
  service with replicas (Docker's DNS answers one A record per container), so the same code
  runs there. Requests go to the addresses and carry ``Host: name:port``, so the callee's
  allowed-hosts check sees the name, not an IP. http only: a certificate names a host, not an IP.

Nothing here calls anyone: a source only says which instances exist. Which one gets a call, and
which are left out for failing, is the balancer's job (``common.http.balancer``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DNS_PREFIX = "dns+"
# Resolves (host, port) to IP addresses; the default asks the OS (getaddrinfo) off the event loop.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


@dataclass(frozen=True)
class Endpoint:
    """One instance: the base URL to connect to, and the Host header to send (None: the URL's)."""

    url: str
    host: str | None = None

    @property
    def name(self) -> str:
        """How logs, metrics and health name it: the URL, with the DNS name it came from."""
        return f"{self.url} ({self.host})" if self.host else self.url


class InstanceSource(Protocol):
    """Where an upstream's instances are."""

    async def endpoints(self) -> Sequence[Endpoint]:
        """The instances as known now (never empty; raises ``LookupError`` if none can be found)."""
        ...


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses the OS resolves ``host`` to (A and AAAA records, hosts file), deduplicated."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class _DnsName:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    def endpoint(self, address: str) -> Endpoint:
        literal = f"[{address}]" if ip_address(address).version == 6 else address
        return Endpoint(f"{self.scheme}://{literal}:{self.port}", host=self.host_header)


def _check_url(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"an upstream URL has no query or fragment: {url!r}")
    return parts.scheme, parts.hostname, parts.port


class Discovery:
    """The instances one settings value names: fixed URLs and DNS names (see the module docstring)."""

    def __init__(
        self,
        value: str,
        *,
        refresh_s: float = 5.0,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.value = value
        self.refresh_s = refresh_s
        self._resolver = resolver
        self._clock = clock
        self._static: list[Endpoint] = []
        self._names: list[_DnsName] = []
        for entry in split_urls(value):
            if entry.startswith(DNS_PREFIX):
                scheme, host, port = _check_url(entry.removeprefix(DNS_PREFIX))
                if scheme != "http":
                    raise ValueError(
                        f"dns+ discovery is for http only (a certificate names no IP): {entry!r}"
                    )
                self._names.append(_DnsName(scheme, host, port or 80))
            else:
                _check_url(entry)
                self._static.append(Endpoint(entry.rstrip("/")))
        if not self._static and not self._names:
            raise ValueError("an upstream needs at least one URL")
        self._resolved: dict[_DnsName, list[Endpoint]] = {}
        self._resolved_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def uses_dns(self) -> bool:
        return bool(self._names)

    def known(self) -> list[Endpoint]:
        """The instances known without a lookup (the fixed URLs and the last DNS answers)."""
        return [*self._static, *(e for name in self._names for e in self._resolved.get(name, []))]

    async def endpoints(self) -> Sequence[Endpoint]:
        if not self._names:
            return self._static
        due = self._resolved_at is None or self._clock() - self._resolved_at >= self.refresh_s
        if due:
            async with self._lock:  # concurrent calls share one lookup
                if self._resolved_at is None or self._clock() - self._resolved_at >= self.refresh_s:
                    await self._resolve()
        found = self.known()
        if not found:
            raise LookupError(f"no instance found for {self.value!r}")
        return found

    async def _resolve(self) -> None:
        for name in self._names:
            try:
                addresses = await self._resolver(name.host, name.port)
            except OSError as exc:
                # Keep what we knew: a DNS hiccup must not take every instance away.
                log.warning(
                    "could not resolve %s: %s; keeping %d known addresses",
                    name.host,
                    exc,
                    len(self._resolved.get(name, [])),
                )
                continue
            if addresses:
                self._resolved[name] = [name.endpoint(a) for a in addresses]
        self._resolved_at = self._clock()


def split_urls(value: str) -> list[str]:
    """The entries of a comma-separated URL list, stripped, empty ones dropped."""
    return [entry.strip() for entry in value.split(",") if entry.strip()]
