"""Login throttling: tight per pair, per address across accounts, generous per account, no lock-out."""

from __future__ import annotations

import pytest

from auth_service.domain.login_throttle import (
    Attempt,
    Limit,
    LoginThrottle,
    Scope,
    Throttled,
    ThrottlePolicy,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = ThrottlePolicy(pair=Limit(3, 60), address=Limit(5, 300), account=Limit(8, 300), known_address_s=3600)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(POLICY, clock=clock)


def fail(throttle: LoginThrottle, account: str, address: str, times: int = 1) -> None:
    for _ in range(times):
        assert isinstance(throttle.begin(account, address), Attempt)


def test_a_pair_is_refused_after_its_limit_until_the_window_has_room(
    throttle: LoginThrottle, clock: FakeClock
) -> None:
    fail(throttle, "ann@example.com", "10.0.0.1")
    clock.now += 10
    fail(throttle, "ann@example.com", "10.0.0.1", times=2)

    refused = throttle.begin("ann@example.com", "10.0.0.1")

    assert refused == Throttled(Scope.PAIR, 50.0)  # the first failure leaves the window at 1060
    clock.now = 1060
    assert isinstance(throttle.begin("ann@example.com", "10.0.0.1"), Attempt)


def test_a_success_resets_the_pair(throttle: LoginThrottle) -> None:
    fail(throttle, "ann@example.com", "10.0.0.1", times=2)
    attempt = throttle.begin("ann@example.com", "10.0.0.1")
    assert isinstance(attempt, Attempt)

    throttle.succeeded(attempt)

    fail(throttle, "ann@example.com", "10.0.0.1", times=3)  # a fresh allowance of 3


def test_an_address_spraying_many_accounts_is_refused(throttle: LoginThrottle) -> None:
    for n in range(5):
        fail(throttle, f"user{n}@example.com", "10.0.0.9")

    refused = throttle.begin("user99@example.com", "10.0.0.9")

    assert isinstance(refused, Throttled)
    assert refused.scope is Scope.ADDRESS
    assert isinstance(throttle.begin("user99@example.com", "10.0.0.10"), Attempt)  # others are not


def test_successful_logins_do_not_count_against_a_shared_address(throttle: LoginThrottle) -> None:
    # Many people behind one NAT logging in fine must never add up to a limit.
    for n in range(20):
        attempt = throttle.begin(f"user{n}@example.com", "192.0.2.1")
        assert isinstance(attempt, Attempt)
        throttle.succeeded(attempt)


def test_a_botnet_on_one_account_is_refused_but_the_real_user_at_a_known_address_is_not(
    throttle: LoginThrottle,
) -> None:
    home = throttle.begin("ann@example.com", "198.51.100.7")
    assert isinstance(home, Attempt)
    throttle.succeeded(home)  # Ann logged in from home once
    for n in range(8):  # the attacker, from eight addresses
        fail(throttle, "ann@example.com", f"203.0.113.{n}")

    stranger = throttle.begin("ann@example.com", "203.0.113.200")
    ann = throttle.begin("ann@example.com", "198.51.100.7")

    assert isinstance(stranger, Throttled)
    assert stranger.scope is Scope.ACCOUNT
    assert isinstance(ann, Attempt)  # no lock-out: the attacker can't deny Ann her account


def test_a_known_address_is_forgotten_after_its_time(throttle: LoginThrottle, clock: FakeClock) -> None:
    home = throttle.begin("ann@example.com", "198.51.100.7")
    assert isinstance(home, Attempt)
    throttle.succeeded(home)
    clock.now += 3600
    for n in range(8):
        fail(throttle, "ann@example.com", f"203.0.113.{n}")

    assert isinstance(throttle.begin("ann@example.com", "198.51.100.7"), Throttled)


def test_unknown_accounts_are_throttled_like_real_ones(throttle: LoginThrottle) -> None:
    fail(throttle, "nobody@example.com", "10.0.0.1", times=3)

    assert isinstance(throttle.begin("nobody@example.com", "10.0.0.1"), Throttled)


def test_keys_are_bounded(clock: FakeClock) -> None:
    throttle = LoginThrottle(ThrottlePolicy(pair=Limit(1, 60), max_keys=10), clock=clock)
    fail(throttle, "first@example.com", "10.0.0.1")
    assert isinstance(throttle.begin("first@example.com", "10.0.0.1"), Throttled)

    for n in range(10):  # the oldest key is evicted, memory stays bounded
        fail(throttle, f"user{n}@example.com", f"10.1.0.{n}")

    assert isinstance(throttle.begin("first@example.com", "10.0.0.1"), Attempt)
