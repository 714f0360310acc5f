"""The in-memory rate limiter and circuit breakers, on a fake clock."""

from __future__ import annotations

import pytest

from linkmeter.engine.limits import BreakerState, MemoryCircuitBreakers, MemoryRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_rate_limiter_spaces_calls_and_allows_a_burst() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    waits = [await limiter.reserve("p", rate=10, burst=3, max_wait=10) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])
    clock.now += 1.0  # a quiet second refills the burst
    assert await limiter.reserve("p", rate=10, burst=3, max_wait=10) == 0.0


async def test_rate_limiter_refuses_without_reserving_when_the_wait_is_too_long() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    assert await limiter.reserve("p", rate=1, burst=1, max_wait=0.5) == 0.0
    assert await limiter.reserve("p", rate=1, burst=1, max_wait=0.5) is None
    assert await limiter.reserve("p", rate=1, burst=1, max_wait=2) == 1.0  # the refusal reserved nothing
    assert await limiter.reserve("other", rate=1, burst=1, max_wait=0) == 0.0  # names are independent


async def test_breaker_reports_its_state() -> None:
    clock = Clock()
    breakers = MemoryCircuitBreakers(clock=clock)
    assert await breakers.state("p", cooldown=5) is BreakerState.CLOSED
    for _ in range(3):
        await breakers.record("p", False, threshold=3)
    assert await breakers.state("p", cooldown=5) is BreakerState.OPEN
    clock.now += 5
    assert await breakers.state("p", cooldown=5) is BreakerState.HALF_OPEN
    await breakers.record("p", True, threshold=3)
    assert await breakers.state("p", cooldown=5) is BreakerState.CLOSED


async def test_a_pause_delays_every_slot_until_it_ends() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock=clock)
    await limiter.pause("p", 2.0)
    assert await limiter.paused_for("p") == pytest.approx(2.0)
    assert await limiter.reserve("p", rate=100, burst=10, max_wait=5) == pytest.approx(2.0)
    assert await limiter.reserve("p", rate=100, burst=10, max_wait=1) is None
    await limiter.pause("p", 0.5)  # a shorter pause never shortens a longer one
    assert await limiter.paused_for("p") == pytest.approx(2.0)
    clock.now += 2.5
    assert await limiter.paused_for("p") == 0.0
