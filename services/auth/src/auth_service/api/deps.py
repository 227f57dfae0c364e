"""Dependencies of the routers: the use cases, taken from the composition root via ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from auth_service.service_layer.accounts import Accounts, Sessions
from auth_service.service_layer.licensing import Licensing
from common.app_factory import request_state
from common.auth import UserTokenIssuer


def _accounts(request: Request) -> Accounts:
    accounts: Accounts = request_state(request, "accounts")
    return accounts


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request_state(request, "sessions")
    return sessions


def _licensing(request: Request) -> Licensing:
    licensing: Licensing = request_state(request, "licensing")
    return licensing


def _token_issuer(request: Request) -> UserTokenIssuer:
    issuer: UserTokenIssuer = request_state(request, "token_issuer")
    return issuer


AccountsDep = Annotated[Accounts, Depends(_accounts)]
SessionsDep = Annotated[Sessions, Depends(_sessions)]
LicensingDep = Annotated[Licensing, Depends(_licensing)]
TokenIssuerDep = Annotated[UserTokenIssuer, Depends(_token_issuer)]
