"""Composition root of the auth service: the runtime, its collaborators and the app."""

from datetime import timedelta

import httpx
from fastapi import FastAPI

from auth_service.adapters.orm import messaging
from auth_service.adapters.passwords import PasswordHasher
from auth_service.adapters.signing_keys import load_signing_key
from auth_service.api import accounts as account_routes
from auth_service.api import internal as internal_routes
from auth_service.api import licenses as license_routes
from auth_service.consumers import member_handlers
from auth_service.domain.login_throttle import Limit, LoginThrottle, ThrottlePolicy
from auth_service.service_layer.accounts import Accounts, Sessions
from auth_service.service_layer.licensing import Licensing
from auth_service.settings import AuthSettings
from common.auth import JwksKeyCache, UserTokenIssuer, UserTokenVerifier
from common.messaging import topic_for
from common.runtime import ServiceRuntime


def build_token_issuer(settings: AuthSettings) -> UserTokenIssuer:
    """The access-token signer, with the key from the user-token keys folder (made on first run)."""
    private_key, kid = load_signing_key(settings.user_token_keys_dir)
    return UserTokenIssuer(
        settings.user_token_issuer,
        settings.user_token_audience,
        private_key,
        kid,
        ttl_seconds=settings.access_token_ttl_s,
    )


def build_login_throttle(settings: AuthSettings) -> LoginThrottle:
    return LoginThrottle(
        ThrottlePolicy(
            pair=Limit(settings.login_pair_max_failures, settings.login_pair_window_s),
            address=Limit(settings.login_address_max_failures, settings.login_address_window_s),
            account=Limit(settings.login_account_max_failures, settings.login_account_window_s),
            known_address_s=settings.login_known_address_days * 24 * 3600,
        )
    )


def build_password_hasher(settings: AuthSettings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.password_hash_time_cost, memory_kib=settings.password_hash_memory_kib
    )


def own_token_verifier(settings: AuthSettings, issuer: UserTokenIssuer) -> UserTokenVerifier:
    """Auth checks its users' tokens with the same verifier as every service, fed its JWKS in memory.

    Fetching the JWKS from itself over HTTP would work, but a service calling itself while
    serving can starve its own worker pool; the JWKS is right here.
    """
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, json=issuer.jwks()))
    keys = JwksKeyCache(settings.jwks_url, http=httpx.AsyncClient(transport=transport))
    return UserTokenVerifier(settings.user_token_issuer, settings.user_token_audience, keys)


def build_app(settings: AuthSettings) -> FastAPI:
    """Wire the auth service from its settings."""
    runtime = ServiceRuntime(settings, tables=messaging)
    outbox = runtime.outbox()  # this service publishes events: the relay runs with the app
    # Suspensions decided in member reach auth as MemberUpdated (see service_layer/member_status.py).
    runtime.add_consumer("members", [topic_for("MemberUpdated")], member_handlers())
    passwords = build_password_hasher(settings)
    issuer = build_token_issuer(settings)
    sessions = Sessions(
        runtime.db,
        passwords,
        issuer,
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_s),
        throttle=build_login_throttle(settings),
    )
    return runtime.create_app(
        title="Auth service",
        description="Users, login, JWKS and software licenses.",
        routers=[account_routes.router, license_routes.router, internal_routes.router],
        accounts=Accounts(runtime.db, outbox, passwords),
        sessions=sessions,
        licensing=Licensing(runtime.db, outbox),
        token_issuer=issuer,
        user_tokens=own_token_verifier(settings, issuer),
    )
