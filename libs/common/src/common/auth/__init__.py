"""Authentication: service-to-service (JWT or shared secret) and user access tokens."""

from common.auth.client_address import CLIENT_ADDRESS_HEADER, client_address
from common.auth.dependencies import (
    ServiceAuthMode,
    build_service_auth,
    current_user,
    require_role,
    require_service,
    service_identity,
)
from common.auth.keys import (
    JWT_ALGORITHM,
    PublicKeyStore,
    ensure_service_keypair,
    load_public_keys,
)
from common.auth.service_tokens import (
    MAX_SERVICE_TOKEN_TTL,
    SERVICE_TOKEN_HEADER,
    JwtServiceAuth,
    ReplayCache,
    ServiceAuthenticator,
    ServiceIdentity,
    ServiceTokenIssuer,
    ServiceTokenVerifier,
)
from common.auth.shared_secret import (
    SERVICE_NAME_HEADER,
    SERVICE_SECRET_HEADER,
    SharedSecretServiceAuth,
)
from common.auth.user_tokens import (
    JwksKeyCache,
    UserPrincipal,
    UserTokenIssuer,
    UserTokenVerifier,
)

__all__ = [
    "CLIENT_ADDRESS_HEADER",
    "JWT_ALGORITHM",
    "MAX_SERVICE_TOKEN_TTL",
    "SERVICE_NAME_HEADER",
    "SERVICE_SECRET_HEADER",
    "SERVICE_TOKEN_HEADER",
    "JwksKeyCache",
    "JwtServiceAuth",
    "PublicKeyStore",
    "ReplayCache",
    "ServiceAuthMode",
    "ServiceAuthenticator",
    "ServiceIdentity",
    "ServiceTokenIssuer",
    "ServiceTokenVerifier",
    "SharedSecretServiceAuth",
    "UserPrincipal",
    "UserTokenIssuer",
    "UserTokenVerifier",
    "build_service_auth",
    "client_address",
    "current_user",
    "ensure_service_keypair",
    "load_public_keys",
    "require_role",
    "require_service",
    "service_identity",
]
