"""Refresh-token decisions: rotate, reuse (revoke the family), revoked, expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from auth_service.domain.refresh_tokens import (
    RefreshOutcome,
    RefreshTokenState,
    decide_refresh,
    hash_refresh_token,
    new_refresh_token,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=14)


def test_a_fresh_unused_token_rotates() -> None:
    assert decide_refresh(RefreshTokenState(LATER, None, None), NOW) is RefreshOutcome.ROTATE


def test_a_used_token_is_reuse() -> None:
    assert decide_refresh(RefreshTokenState(LATER, NOW, None), NOW) is RefreshOutcome.REUSED


def test_reuse_is_detected_even_after_expiry() -> None:
    used_and_expired = RefreshTokenState(NOW - timedelta(seconds=1), NOW - timedelta(days=1), None)
    assert decide_refresh(used_and_expired, NOW) is RefreshOutcome.REUSED


def test_a_token_of_a_revoked_family_is_refused_whether_used_or_not() -> None:
    assert decide_refresh(RefreshTokenState(LATER, None, NOW), NOW) is RefreshOutcome.REVOKED
    assert decide_refresh(RefreshTokenState(LATER, NOW, NOW), NOW) is RefreshOutcome.REVOKED


def test_an_expired_token_is_refused_from_its_expiry_on() -> None:
    assert decide_refresh(RefreshTokenState(NOW, None, None), NOW) is RefreshOutcome.EXPIRED
    assert decide_refresh(RefreshTokenState(NOW, None, None), NOW - timedelta(seconds=1)) is (
        RefreshOutcome.ROTATE
    )


def test_tokens_are_random_and_stored_only_as_a_hash() -> None:
    token = new_refresh_token()

    assert len(token) >= 43  # 32 bytes, URL-safe base64
    assert token != new_refresh_token()
    assert hash_refresh_token(token) == hash_refresh_token(token)
    assert len(hash_refresh_token(token)) == 64
    assert token not in hash_refresh_token(token)
