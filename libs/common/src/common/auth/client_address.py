"""The address of the client a request is made for, told by the gateway and believed only from it.

Behind the gateway every request reaches a service from the gateway's own address, so a
service that keys anything on the client (auth's login throttling) needs the gateway to say
who the client is. The gateway puts the address it sees (its TCP peer, or what its trusted
proxies said) in ``X-Client-Address``; a service believes that header only on a request that
also carries a valid service credential of a trusted caller (the gateway). From anyone else,
a client calling the service's port directly included, the header is ignored and the TCP peer
is the address: a forged ``X-Client-Address`` changes nothing.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request

from common.auth.dependencies import service_identity
from common.errors import ProblemError

CLIENT_ADDRESS_HEADER = "X-Client-Address"
UNKNOWN_ADDRESS = "unknown"


def client_address(request: Request, *, trusted_callers: frozenset[str] = frozenset({"gateway"})) -> str:
    """The client's IP address: from ``X-Client-Address`` when a trusted caller sent it, else the peer."""
    peer = request.client.host if request.client else UNKNOWN_ADDRESS
    told = request.headers.get(CLIENT_ADDRESS_HEADER)
    if not told:
        return peer
    try:
        caller = service_identity(request).caller
    except ProblemError:
        return peer  # no or bad credentials on a public route: a client, not the gateway
    if caller not in trusted_callers:
        return peer
    try:
        return str(ipaddress.ip_address(told.strip()))
    except ValueError:
        return peer
