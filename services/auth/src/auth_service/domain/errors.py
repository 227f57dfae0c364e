"""The auth domain's failures, each already the problem response it becomes."""

from __future__ import annotations

import math

from common.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized


class EmailTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("an account with this email address already exists")


class InvalidCredentials(Unauthorized):
    """One message for an unknown email and a wrong password: a login reveals no accounts."""

    def __init__(self) -> None:
        super().__init__("incorrect email or password")


class TooManyLoginAttempts(RateLimited):
    """Throttled: the same answer whichever limit it was and whatever the password (see Retry-After)."""

    def __init__(self, retry_after_s: float) -> None:
        # Rounded up: a client waiting exactly Retry-After must not arrive a moment too early.
        super().__init__("too many failed logins; try again later", retry_after=math.ceil(retry_after_s))


class AccountSuspended(Forbidden):
    def __init__(self) -> None:
        super().__init__("this account is suspended")


class InvalidRefreshToken(Unauthorized):
    """Unknown, expired, consumed or revoked: the client can only log in again."""

    def __init__(self) -> None:
        super().__init__("refresh token is invalid, expired or revoked; log in again")


class UserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("no such user")


class UnknownLicense(NotFound):
    def __init__(self) -> None:
        super().__init__("no license with this key")


class LicenseRevoked(Conflict):
    def __init__(self) -> None:
        super().__init__("this license has been revoked")


class NoSeatLeft(Conflict):
    def __init__(self, seats: int) -> None:
        super().__init__(f"all {seats} seats of this license are in use")
