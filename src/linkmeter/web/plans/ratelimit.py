"""API request rate limits per account (the ``limits`` library, moving window: never more than the limit in
any window of its length). In memory in one process; in Redis (``LINKMETER_REDIS_URL``) when several web
processes serve, so together they never allow more than the plan. When Redis fails the process falls back to
its own memory for a while (each process then enforces the plan on its own) and logs it."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits import strategies as sync_strategies
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import MemoryStorage
from limits.util import WindowStats

from linkmeter.engine.settings import redis_prefix, redis_url
from linkmeter.web.plans.limits import PlanLimits, RateWindow

log = logging.getLogger(__name__)

RETRY_REDIS_AFTER = 5.0  # seconds the fallback lasts before Redis is tried again


@dataclass(frozen=True, slots=True)
class WindowState:
    window: RateWindow
    remaining: int
    reset_seconds: int  # until a slot frees (0: nothing used)


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    windows: tuple[WindowState, ...]

    @property
    def retry_after(self) -> int:
        """Seconds until the first exhausted window frees a slot (at least 1)."""
        waits = [w.reset_seconds for w in self.windows if w.remaining <= 0]
        return max(1, min(waits)) if waits else 0


def _item(window: RateWindow) -> RateLimitItem:
    if window.seconds == 1:
        return RateLimitItemPerSecond(window.limit, namespace="api")
    return RateLimitItemPerMinute(window.limit, window.seconds // 60, namespace="api")


class _QuietMemoryStorage(MemoryStorage):
    """limits' memory storage, with its expiry sweep started at most every EXPIRY_EVERY seconds: it starts a
    10 ms timer thread on every hit when none is alive, about a hundred thread starts a second under a steady
    load. The windows never count expired entries anyway (the moving window compares their expiry); the
    sweep only frees their memory, a second later at most."""

    EXPIRY_EVERY = 1.0

    def __init__(self) -> None:
        self._swept_at = 0.0
        super().__init__()

    def _MemoryStorage__schedule_expiry(self) -> None:  # the base's private hook, called before every hit
        now = time.monotonic()
        if now - self._swept_at >= self.EXPIRY_EVERY and not self.timer.is_alive():
            self._swept_at = now
            self.timer = threading.Timer(0.01, self._MemoryStorage__expire_events)  # type: ignore[attr-defined]
            self.timer.daemon = True
            self.timer.start()


class _MemoryLimiter:
    """The process's in-memory windows (threads and event loops alike), behind the async limiter's interface:
    a memory hit costs microseconds, so it is made on the loop."""

    def __init__(self) -> None:
        self._limiter = sync_strategies.MovingWindowRateLimiter(_QuietMemoryStorage())

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        return self._limiter.hit(item, *identifiers)

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        return self._limiter.get_window_stats(item, *identifiers)


type AnyLimiter = MovingWindowRateLimiter | _MemoryLimiter

_memory = _MemoryLimiter()


class ApiRateLimiter:
    """One per event loop (the Redis client belongs to the loop that made it); the in-memory windows are the
    process's."""

    def __init__(self, url: str | None, prefix: str) -> None:
        self._memory = _memory
        self._shared: MovingWindowRateLimiter | None = None
        if url:
            storage = RedisStorage(_async_uri(url), implementation="redispy", key_prefix=f"{prefix}api",
                                            wrap_exceptions=True, socket_timeout=0.5, socket_connect_timeout=0.5)
            self._shared = MovingWindowRateLimiter(storage)
        self._down_until = 0.0

    def _limiter(self) -> AnyLimiter:
        if self._shared is not None and time.monotonic() >= self._down_until:
            return self._shared
        return self._memory

    async def hit(self, subject: str, plan: PlanLimits) -> RateDecision:
        """Count one request of ``subject`` against every window of its plan; refused when any is full."""
        windows = plan.rate_windows
        if not windows:
            return RateDecision(True, ())
        limiter = self._limiter()
        try:
            return await self._hit(limiter, subject, windows)
        except Exception as exc:
            if limiter is self._memory:
                raise
            self._down_until = time.monotonic() + RETRY_REDIS_AFTER
            log.warning("Redis rate-limit storage failed (%s); limiting in this process for %.0f s", exc,
                        RETRY_REDIS_AFTER)
            return await self._hit(self._memory, subject, windows)

    async def peek(self, subject: str, plan: PlanLimits) -> RateDecision:
        """The windows' state without counting (GET /usage)."""
        limiter = self._limiter()
        try:
            states = [await self._state(limiter, subject, w) for w in plan.rate_windows]
        except Exception:
            states = [await self._state(self._memory, subject, w) for w in plan.rate_windows]
        return RateDecision(all(s.remaining > 0 for s in states), tuple(states))

    async def _hit(self, limiter: AnyLimiter, subject: str,
                   windows: tuple[RateWindow, ...]) -> RateDecision:
        allowed = True
        for window in windows:
            if not await limiter.hit(_item(window), subject):
                allowed = False
                break  # the longer windows are not charged for a refused request
        states = tuple([await self._state(limiter, subject, w) for w in windows])
        return RateDecision(allowed, states)

    async def _state(self, limiter: AnyLimiter, subject: str, window: RateWindow) -> WindowState:
        stats = await limiter.get_window_stats(_item(window), subject)
        remaining = max(0, int(stats.remaining))
        reset = 0 if remaining >= window.limit else max(1, int(stats.reset_time - time.time() + 0.999))
        return WindowState(window, remaining, reset)


def _async_uri(url: str) -> str:
    return url if url.startswith("async+") else f"async+{url}"


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ApiRateLimiter] = weakref.WeakKeyDictionary()


def limiter() -> ApiRateLimiter:
    """This event loop's limiter, configured from the environment (Redis when LINKMETER_REDIS_URL is set)."""
    loop = asyncio.get_running_loop()
    found = _limiters.get(loop)
    if found is None:
        found = _limiters[loop] = ApiRateLimiter(redis_url(os.environ), redis_prefix(os.environ))
    return found


def forget_limiters() -> None:
    """Start over with empty in-memory windows (tests)."""
    global _memory
    _limiters.clear()
    _memory = _MemoryLimiter()
