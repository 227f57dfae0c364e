"""Rotating refresh tokens with reuse detection.

Every login starts a *family*. Using a refresh token consumes it and issues its successor in
the same family. A consumed token presented again means two parties hold the family (one of
them a thief), and we can't tell which is which: the whole family is revoked, so both must
log in again. Only the SHA-256 of a token is stored, so a database leak reveals no usable token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RefreshOutcome(StrEnum):
    """What presenting a known refresh token leads to."""

    ROTATE = "rotate"  # valid: consume it, issue the next one in the family
    REUSED = "reused"  # already consumed: revoke the whole family
    REVOKED = "revoked"  # its family was revoked earlier
    EXPIRED = "expired"


@dataclass(frozen=True)
class RefreshTokenState:
    """The stored facts about one refresh token that decide its fate."""

    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


def decide_refresh(token: RefreshTokenState, now: datetime) -> RefreshOutcome:
    """Decide what presenting ``token`` at ``now`` does."""
    if token.revoked_at is not None:
        return RefreshOutcome.REVOKED
    # Reuse is checked before expiry: a replayed token is a theft signal even when it is old.
    if token.used_at is not None:
        return RefreshOutcome.REUSED
    if now >= token.expires_at:
        return RefreshOutcome.EXPIRED
    return RefreshOutcome.ROTATE


def new_refresh_token() -> str:
    """A fresh, unguessable refresh token (32 random bytes, URL-safe text)."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """What we store and look up instead of the token itself.

    A plain SHA-256 is enough (no salt, no slow hash): the token is 256 random bits, not a
    password, so there is nothing to brute-force.
    """
    return hashlib.sha256(token.encode()).hexdigest()
