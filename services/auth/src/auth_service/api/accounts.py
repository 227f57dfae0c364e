"""Sign-up, login (OAuth2 password form), refresh and the JWKS."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from auth_service.api.deps import AccountsDep, SessionsDep, TokenIssuerDep
from auth_service.api.schemas import Jwks, RefreshRequest, SignupRequest, TokenResponse, UserResponse
from auth_service.service_layer.accounts import TokenPair
from common.auth import UserPrincipal, client_address, current_user
from common.openapi import PUBLIC, problem_responses

router = APIRouter(tags=["auth"])

SIGNUP_ERRORS = problem_responses(400, 422, described={409: "The email is taken (whatever its case)"})
LOGIN_ERRORS = problem_responses(
    400,
    422,
    described={
        401: "Unknown email or wrong password (the same answer for both)",
        403: "The account is suspended (the password was right)",
        429: "Too many failed logins for this account or from this address lately (see Retry-After)",
    },
)
REFRESH_ERRORS = problem_responses(
    400,
    422,
    described={
        401: "Unknown, expired or already used refresh token (reuse revokes the family)",
        403: "The account is suspended",
    },
)
LOGOUT_ERRORS = problem_responses(
    400,
    422,
    described={
        401: "An Authorization header was sent, but its access token is not valid",
        403: "The access token sent belongs to another user than the refresh token",
    },
)
# The login form, as an OAuth2 client sends it (username is the email).
_LOGIN_EXAMPLE = {
    "requestBody": {
        "content": {
            "application/x-www-form-urlencoded": {
                "example": {"username": "ada@example.com", "password": "correct-horse"}
            }
        }
    }
}

# RFC 6749 §5.1: responses carrying tokens must not be cached anywhere.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _tokens(pair: TokenPair, response: Response) -> TokenResponse:
    response.headers.update(_NO_STORE)
    return TokenResponse(**asdict(pair))


@router.post(
    "/api/v1/auth/signup", status_code=status.HTTP_201_CREATED, responses=SIGNUP_ERRORS, openapi_extra=PUBLIC
)
def signup(body: SignupRequest, accounts: AccountsDep) -> UserResponse:
    """Create an account (409 if the email is taken, whatever its case)."""
    account = accounts.signup(body.email, body.password, body.display_name)
    return UserResponse(**asdict(account))


@router.post("/api/v1/auth/token", responses=LOGIN_ERRORS, openapi_extra=PUBLIC | _LOGIN_EXAMPLE)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    sessions: SessionsDep,
    request: Request,
    response: Response,
) -> TokenResponse:
    """Log in with email (``username``) and password: an access token and a refresh token.

    Failed logins are throttled per account and per client address (429 with Retry-After).
    """
    # The client's address as the gateway saw it (only the gateway is believed), else the peer.
    address = client_address(request)
    return _tokens(sessions.login(form.username, form.password, address), response)


@router.post("/api/v1/auth/refresh", responses=REFRESH_ERRORS, openapi_extra=PUBLIC)
def refresh(body: RefreshRequest, sessions: SessionsDep, response: Response) -> TokenResponse:
    """Trade a refresh token for new tokens; the presented one can't be used again."""
    return _tokens(sessions.refresh(body.refresh_token), response)


async def _optional_user(request: Request) -> UserPrincipal | None:
    """The user of the access token if one is sent (an invalid one is a 401), else ``None``."""
    if "Authorization" not in request.headers:
        return None
    return await current_user(request)


@router.post(
    "/api/v1/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=LOGOUT_ERRORS,
    openapi_extra=PUBLIC,
)
def logout(
    body: RefreshRequest,
    sessions: SessionsDep,
    user: Annotated[UserPrincipal | None, Depends(_optional_user)],
) -> Response:
    """End a session: its refresh token and every token of its family stop working (idempotent).

    The access token needs no revoking: it expires within minutes (``expires_in``).
    """
    sessions.logout(body.refresh_token, requested_by=user.user_id if user is not None else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=_NO_STORE)


@router.get("/.well-known/jwks.json", openapi_extra=PUBLIC)
def jwks(issuer: TokenIssuerDep, response: Response) -> Jwks:
    """The public keys that verify access tokens."""
    # Verifiers cache keys and refetch on an unknown kid; a short shared cache is harmless.
    response.headers["Cache-Control"] = "public, max-age=300"
    document: dict[str, Any] = issuer.jwks()
    return Jwks(keys=document["keys"])
