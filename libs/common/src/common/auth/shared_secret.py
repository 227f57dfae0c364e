"""Shared-secret service auth: the simplest thing that works, kept for teaching.

Every service knows one secret and sends it with its name. Compare with the JWT mode:
the secret never expires, travels on every call, and anyone holding it can claim to be
any service, so ``X-Service-Name`` is an assertion, not a proof.

There is no replay protection in this mode, and none could be added without turning it into
the JWT mode: every request carries the same credential, so "replaying" a request is what
every honest call does, and whoever saw one request holds the secret itself, not a token
that expires. The protection is the channel (TLS, a private network) and rotating the secret.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from common.auth.keys import check_service_name
from common.auth.service_tokens import ServiceIdentity
from common.errors import Unauthorized

# Header and scheme names, not secrets.
SERVICE_SECRET_HEADER = "X-Service-Secret"
SERVICE_NAME_HEADER = "X-Service-Name"
SERVICE_SECRET_SCHEME = "ServiceSecret"
MIN_SECRET_LENGTH = 16


class SharedSecretServiceAuth:
    """Service auth by a shared secret in ``X-Service-Secret`` plus ``X-Service-Name``."""

    def __init__(self, service: str, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the shared secret must be at least {MIN_SECRET_LENGTH} characters")
        self.service = check_service_name(service)
        self._secret = secret.encode()

    def headers_for(self, audience: str) -> dict[str, str]:
        """The same two headers whoever ``audience`` is."""
        return {SERVICE_NAME_HEADER: self.service, SERVICE_SECRET_HEADER: self._secret.decode()}

    def authenticate(self, headers: Mapping[str, str]) -> ServiceIdentity:
        """The caller named in ``X-Service-Name`` if ``X-Service-Secret`` matches."""
        caller = headers.get(SERVICE_NAME_HEADER)
        secret = headers.get(SERVICE_SECRET_HEADER)
        if not caller or secret is None:
            raise Unauthorized(
                f"missing {SERVICE_SECRET_HEADER} or {SERVICE_NAME_HEADER} header",
                scheme=SERVICE_SECRET_SCHEME,
            )
        # Constant time: how long a comparison takes must not reveal how much of it matched.
        if not hmac.compare_digest(secret.encode(), self._secret):
            raise Unauthorized("service secret invalid", scheme=SERVICE_SECRET_SCHEME)
        return ServiceIdentity(caller=caller)
