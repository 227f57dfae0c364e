"""The gateway's moving-window rate limiter, on a clock the test moves."""

from __future__ import annotations

from gateway_service.adapters.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_limit_holds_at_every_instant_not_per_fixed_window() -> None:
    clock = Clock()
    limiter = RateLimiter("3/minute", clock=clock)
    for at in (1000.0, 1020.0, 1040.0):
        clock.now = at
        assert await limiter.hit("ada") is None

    clock.now = 1041.0
    assert await limiter.hit("ada") == 19  # the request at 1000 leaves the window at 1060
    clock.now = 1059.5  # a fixed window would have reset at a minute boundary by now
    assert await limiter.hit("ada") == 1
    clock.now = 1060.0
    assert await limiter.hit("ada") is None  # 1000 left: one place
    clock.now = 1061.0
    assert await limiter.hit("ada") == 19  # next to leave: 1020, at 1080


async def test_callers_are_counted_apart_and_a_refused_request_does_not_count() -> None:
    clock = Clock()
    limiter = RateLimiter("2/second", clock=clock)

    assert await limiter.hit("ip:10.0.0.1") is None
    assert await limiter.hit("ip:10.0.0.1") is None
    assert await limiter.hit("ip:10.0.0.1") == 1
    assert await limiter.hit("ip:10.0.0.2") is None

    clock.now += 1.0
    # Refusals were not recorded: both places are free again after one second.
    assert await limiter.hit("ip:10.0.0.1") is None
    assert await limiter.hit("ip:10.0.0.1") is None


async def test_callers_idle_for_a_window_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter("5/minute", clock=clock)
    for n in range(100):
        await limiter.hit(f"user:{n}")
    assert limiter.callers == 100

    clock.now += 61
    await limiter.hit("user:new")
    assert limiter.callers == 1
