"""Login throttling: slow password guessing down without letting an attacker lock a user out.

Failed logins are counted in three sliding windows, each with its own limit:

- per (account, address), tight (5 in 5 min by default): one client guessing one password;
- per address, across accounts (30 in 15 min): one client trying many accounts (spraying);
- per account, across addresses, generous (100 in 15 min): a guessing botnet on one account.
  An address the account logged in from successfully before (a *known* address, remembered
  for 30 days) is exempt from this one, so an attacker who drives the account's count up
  from many addresses delays only strangers, never the real user at home.

An attempt over a limit is refused before the password is even checked (no Argon2 work, and
the answer does not depend on the password): the caller learns only how long to wait. A
successful login forgets the pair's failures. Unknown accounts are counted exactly like known
ones, so throttling reveals nothing about which accounts exist.

An attempt counts when it *starts* (taken under a lock), so parallel guesses can't slip past
a limit together; a success gives its count back. The counts live in this process, bounded
in keys (least recently used go first): with several auth instances each counts on its own
(see docs/security.md).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    PAIR = "pair"
    ADDRESS = "address"
    ACCOUNT = "account"


@dataclass(frozen=True)
class Limit:
    """At most ``failures`` failed logins in any ``window_s`` seconds."""

    failures: int
    window_s: float


@dataclass(frozen=True)
class ThrottlePolicy:
    pair: Limit = Limit(5, 300)
    address: Limit = Limit(30, 900)
    account: Limit = Limit(100, 900)
    known_address_s: float = 30 * 24 * 3600
    max_keys: int = 100_000  # per scope; ~100 bytes a failure, a few MB at most


@dataclass(frozen=True)
class Attempt:
    """A login attempt under way: what to give back if it succeeds."""

    account: str
    address: str
    started_at: float


@dataclass(frozen=True)
class Throttled:
    """The attempt is refused: wait ``retry_after_s`` seconds (``scope`` is for logs and metrics)."""

    scope: Scope
    retry_after_s: float


class _Windows:
    """The recent failure times of each key, at most ``limit.failures`` of them, LRU-bounded."""

    def __init__(self, limit: Limit, max_keys: int) -> None:
        self.limit = limit
        self._max_keys = max_keys
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may fail again, or ``None`` if it may now."""
        times = self._times.get(key)
        if times is None or len(times) < self.limit.failures:
            return None
        # Full: the oldest of the last N failures decides when the window has room again.
        free_at = times[0] + self.limit.window_s
        return free_at - now if free_at > now else None

    def add(self, key: str, at: float) -> None:
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque(maxlen=self.limit.failures)
            while len(self._times) > self._max_keys:
                self._times.popitem(last=False)
        else:
            self._times.move_to_end(key)
        times.append(at)

    def remove(self, key: str, at: float) -> None:
        times = self._times.get(key)
        if times is not None and at in times:
            times.remove(at)

    def forget(self, key: str) -> None:
        self._times.pop(key, None)


class LoginThrottle:
    """``begin`` an attempt (refused, or counted), then ``succeeded`` or nothing more."""

    def __init__(
        self, policy: ThrottlePolicy | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._pairs = _Windows(self.policy.pair, self.policy.max_keys)
        self._addresses = _Windows(self.policy.address, self.policy.max_keys)
        self._accounts = _Windows(self.policy.account, self.policy.max_keys)
        self._known: OrderedDict[str, float] = OrderedDict()  # pair -> last successful login

    def begin(self, account: str, address: str) -> Attempt | Throttled:
        """Count an attempt by ``address`` on ``account``, or refuse it if a limit is reached."""
        pair = _pair(account, address)
        with self._lock:
            now = self._clock()
            checks = [(Scope.PAIR, self._pairs, pair), (Scope.ADDRESS, self._addresses, address)]
            if not self._is_known(pair, now):
                checks.append((Scope.ACCOUNT, self._accounts, account))
            for scope, windows, key in checks:
                wait = windows.wait(key, now)
                if wait is not None:
                    return Throttled(scope, wait)
            self._pairs.add(pair, now)
            self._addresses.add(address, now)
            self._accounts.add(account, now)
            return Attempt(account, address, now)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: no failure counted, the pair starts afresh, the address is known."""
        pair = _pair(attempt.account, attempt.address)
        with self._lock:
            self._pairs.forget(pair)
            self._addresses.remove(attempt.address, attempt.started_at)
            self._accounts.remove(attempt.account, attempt.started_at)
            self._known[pair] = self._clock()
            self._known.move_to_end(pair)
            while len(self._known) > self.policy.max_keys:
                self._known.popitem(last=False)

    def _is_known(self, pair: str, now: float) -> bool:
        last = self._known.get(pair)
        return last is not None and now - last < self.policy.known_address_s


def _pair(account: str, address: str) -> str:
    # NUL can be in neither an email we accept nor an IP address: the pair key is unambiguous.
    return f"{account}\x00{address}"
