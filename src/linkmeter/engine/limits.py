"""In-memory rate limiter (GCRA) and circuit breakers, for one process (the Redis ones: ``engine.state``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from linkmeter.engine.ports import BreakerState as BreakerState  # named here too: the breakers' callers read it


class MemoryRateLimiter:
    """GCRA (a token bucket without a refill loop): one 'theoretical arrival time' per name."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tat: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}
        self._clock = clock

    async def reserve(self, name: str, rate: float, burst: int, max_wait: float) -> float | None:
        now = self._clock()
        interval = 1.0 / rate
        tat = max(self._tat.get(name, now), now, self._paused_until.get(name, now))
        allowed_at = max(tat - interval * (max(burst, 1) - 1), self._paused_until.get(name, now))
        wait = max(0.0, allowed_at - now)
        if wait > max_wait:
            return None
        self._tat[name] = tat + interval
        return wait

    async def pause(self, name: str, seconds: float) -> None:
        until = self._clock() + seconds
        if until > self._paused_until.get(name, 0.0):
            self._paused_until[name] = until

    async def paused_for(self, name: str, *, exact: bool = False) -> float:
        return max(0.0, self._paused_until.get(name, 0.0) - self._clock())


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class MemoryCircuitBreakers:
    """Opens after ``threshold`` consecutive failures; after ``cooldown`` lets one probe through; closes
    on its success, re-opens on its failure."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._breakers: dict[str, _Breaker] = {}
        self._clock = clock

    async def allow(self, name: str, threshold: int, cooldown: float) -> bool:
        breaker = self._breakers.get(name)
        if breaker is None or breaker.opened_at is None:
            return True
        if self._clock() - breaker.opened_at < cooldown or breaker.probing:
            return False
        breaker.probing = True
        return True

    async def record(self, name: str, success: bool, threshold: int) -> None:
        breaker = self._breakers.setdefault(name, _Breaker())
        if success:
            breaker.failures = 0
            breaker.opened_at = None
            breaker.probing = False
            return
        breaker.failures += 1
        if breaker.probing or breaker.failures >= threshold:
            breaker.opened_at = self._clock()
            breaker.probing = False

    async def state(self, name: str, cooldown: float) -> BreakerState:
        breaker = self._breakers.get(name)
        if breaker is None or breaker.opened_at is None:
            return BreakerState.CLOSED
        if breaker.probing or self._clock() - breaker.opened_at >= cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN
