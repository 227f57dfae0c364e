"""Accounts (sign-up, user lookup) and sessions (login, refresh-token rotation)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from auth_service.adapters import repositories as repo
from auth_service.adapters.orm import RefreshToken, User
from auth_service.adapters.passwords import PasswordHasher
from auth_service.domain.emails import InvalidEmail, normalize_email
from auth_service.domain.errors import (
    AccountSuspended,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    TooManyLoginAttempts,
    UserNotFound,
)
from auth_service.domain.login_throttle import LoginThrottle, Throttled
from auth_service.domain.refresh_tokens import (
    RefreshOutcome,
    RefreshTokenState,
    decide_refresh,
    hash_refresh_token,
    new_refresh_token,
)
from auth_service.domain.users import AccountStatus, Role, roles_for
from common.auth import UserTokenIssuer
from common.clock import Clock, utc_now
from common.db import Database
from common.errors import Forbidden
from common.messaging import Outbox

log = logging.getLogger(__name__)

LOGINS_THROTTLED = Counter(
    "auth_logins_throttled_total", "Login attempts refused by login throttling", ["scope"]
)


@dataclass(frozen=True)
class Account:
    user_id: str
    email: str
    display_name: str
    roles: list[str]

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(user.user_id, user.email, user.display_name, roles_for(Role(user.role)))


@dataclass(frozen=True)
class TokenPair:
    """What a login or refresh answers: a short-lived access token and the next refresh token."""

    access_token: str
    expires_in: int
    refresh_token: str


class Accounts:
    """Sign-up and user lookup, each one unit of work."""

    def __init__(
        self, db: Database, outbox: Outbox, passwords: PasswordHasher, clock: Clock = utc_now
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._passwords = passwords
        self._clock = clock

    def signup(self, email: str, password: str, display_name: str, *, role: Role = Role.MEMBER) -> Account:
        """Create the user and its ``UserRegistered`` event in one transaction (``EmailTaken`` if taken)."""
        email = normalize_email(email)
        # Hash before the transaction: Argon2 is slow on purpose and must not hold the write lock.
        password_hash = self._passwords.hash(password)
        user = User(
            user_id=str(uuid.uuid4()),
            email=email,
            display_name=display_name,
            password_hash=password_hash,
            role=role.value,
            created_at=self._clock(),
        )
        try:
            with self._db.transaction() as session:
                if repo.user_by_email(session, email) is not None:
                    raise EmailTaken()
                session.add(user)
                session.flush()
                self._outbox.add(
                    session,
                    "UserRegistered",
                    key=user.user_id,
                    payload={
                        "user_id": user.user_id,
                        "email": user.email,
                        "display_name": user.display_name,
                        "registered_at": user.created_at,
                    },
                )
        except IntegrityError:
            # Two sign-ups raced past the check (possible on PostgreSQL): the constraint decides.
            raise EmailTaken() from None
        log.info("user registered", extra={"user_id": user.user_id, "role": user.role})
        return Account.of(user)

    def get(self, user_id: str) -> Account:
        """The account with this id (``UserNotFound`` if none)."""
        with self._db.read() as session:
            user = repo.user_by_id(session, user_id)
            if user is None:
                raise UserNotFound()
            return Account.of(user)

    def find_by_email(self, email: str) -> Account | None:
        """The account with this email (any case), if there is one."""
        with self._db.read() as session:
            user = repo.user_by_email(session, normalize_email(email))
            return Account.of(user) if user is not None else None


class Sessions:
    """Login and refresh: access tokens plus rotating refresh tokens, each one unit of work."""

    def __init__(
        self,
        db: Database,
        passwords: PasswordHasher,
        tokens: UserTokenIssuer,
        refresh_ttl: timedelta,
        throttle: LoginThrottle | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._tokens = tokens
        self._refresh_ttl = refresh_ttl
        self._throttle = throttle or LoginThrottle()
        self._clock = clock

    def login(self, email: str, password: str, client_address: str) -> TokenPair:
        """Tokens for valid credentials; ``InvalidCredentials`` (same answer, same work) otherwise.

        ``TooManyLoginAttempts`` (before any password check) when the account, the address or
        the pair of them failed too often lately (see ``domain.login_throttle``).
        """
        try:
            normalized = normalize_email(email)
        except InvalidEmail:
            normalized = None
        # Unknown and malformed accounts are throttled like real ones: a 429 reveals nothing.
        account = normalized or email.strip().lower()[:320]
        attempt = self._throttle.begin(account, client_address)
        if isinstance(attempt, Throttled):
            LOGINS_THROTTLED.labels(scope=attempt.scope.value).inc()
            log.warning("login throttled", extra={"scope": attempt.scope.value, "client": client_address})
            raise TooManyLoginAttempts(attempt.retry_after_s)
        user = None
        if normalized is not None:
            with self._db.read() as session:
                user = repo.user_by_email(session, normalized)
        if user is None:
            self._passwords.waste_time(password)
            raise InvalidCredentials()
        if not self._passwords.verify(password, user.password_hash):
            raise InvalidCredentials()
        self._throttle.succeeded(attempt)
        if user.status == AccountStatus.SUSPENDED:
            raise AccountSuspended()  # told only to whoever knows the password
        with self._db.transaction() as session:
            return self._issue(session, user, family_id=str(uuid.uuid4()))

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; a consumed one presented again revokes its whole family."""
        now = self._clock()
        with self._db.transaction() as session:
            stored = repo.refresh_token_by_hash(session, hash_refresh_token(refresh_token))
            if stored is not None and stored.user.status == AccountStatus.SUSPENDED:
                raise AccountSuspended()  # its families were revoked when the suspension arrived
            if stored is not None:
                outcome = decide_refresh(
                    RefreshTokenState(stored.expires_at, stored.used_at, stored.revoked_at), now
                )
                if outcome is RefreshOutcome.ROTATE:
                    stored.used_at = now
                    return self._issue(session, stored.user, family_id=stored.family_id)
                if outcome is RefreshOutcome.REUSED:
                    repo.revoke_family(session, stored.family_id, now)
                    log.warning(
                        "refresh token reused: family revoked",
                        extra={"user_id": stored.user_id, "family_id": stored.family_id},
                    )
        # Raised after the block, so the revocation above is committed rather than rolled back.
        raise InvalidRefreshToken()

    def logout(self, refresh_token: str, *, requested_by: str | None = None) -> None:
        """End the session: revoke the refresh token's whole family (idempotent).

        Holding the refresh token is the proof (it could be traded for tokens anyway), so a
        client whose access token expired can still log out. A caller who also shows an
        access token of *another* user is refused (``Forbidden``): no one ends someone else's
        session with a token they should not hold. An unknown token changes nothing.
        The access tokens already issued stay valid until they expire (15 minutes at most).
        """
        now = self._clock()
        with self._db.transaction() as session:
            stored = repo.refresh_token_by_hash(session, hash_refresh_token(refresh_token))
            if stored is None:
                return
            if requested_by is not None and requested_by != stored.user_id:
                raise Forbidden("this refresh token belongs to another user")
            repo.revoke_family(session, stored.family_id, now)
        log.info(
            "logged out: family revoked", extra={"user_id": stored.user_id, "family_id": stored.family_id}
        )

    def _issue(self, session: Session, user: User, *, family_id: str) -> TokenPair:
        refresh_token = new_refresh_token()
        now = self._clock()
        session.add(
            RefreshToken(
                token_hash=hash_refresh_token(refresh_token),
                family_id=family_id,
                user_id=user.user_id,
                issued_at=now,
                expires_at=now + self._refresh_ttl,
                used_at=None,
                revoked_at=None,
            )
        )
        access_token = self._tokens.issue(user.user_id, roles_for(Role(user.role)))
        return TokenPair(access_token, self._tokens.ttl_seconds, refresh_token)
