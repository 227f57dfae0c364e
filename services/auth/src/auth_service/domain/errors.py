"""The auth domain's failures, each already the problem response it becomes."""

from __future__ import annotations

from common.errors import Conflict, NotFound, Unauthorized


class EmailTaken(Conflict):
    def __init__(self) -> None:
        super().__init__("an account with this email address already exists")


class InvalidCredentials(Unauthorized):
    """One message for an unknown email and a wrong password: a login reveals no accounts."""

    def __init__(self) -> None:
        super().__init__("incorrect email or password")


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
