"""Failed authentication per client address (bad keys): a moving minute (the ``limits`` library), so guessing
is slow; never counted against any account. In this process's memory embedded; in Redis (``LINKMETER_REDIS_URL``)
when several web processes serve, so together they allow no more failures per address than one would. When
Redis fails the process counts in its own memory for a while (each process then limits on its own) and logs it.

Both the sync path (WSGI, tests) and the async one (``linkmeter serve``) are served: the async one never blocks
its event loop on Redis (a client per event loop, as the plans' rate limits)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from limits import RateLimitItem, RateLimitItemPerMinute
from limits import strategies as sync_strategies
from limits.aio import strategies as async_strategies
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.storage import MemoryStorage, RedisStorage
from limits.util import WindowStats

log = logging.getLogger(__name__)

WINDOW = 60.0
RETRY_REDIS_AFTER = 5.0  # seconds the in-memory fallback lasts before Redis is tried again
REDIS_TIMEOUT = 0.5


class FailureLimiter:
    """``per_minute`` failed authentications per address in any minute, then 429 until the oldest leaves the
    window. ``redis``: (url, key prefix) to share the counts between processes."""

    def __init__(self, per_minute: int, redis: tuple[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._memory = sync_strategies.MovingWindowRateLimiter(MemoryStorage())
        self._redis = redis
        self._sync_shared: sync_strategies.MovingWindowRateLimiter | None = None
        self._async_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                      async_strategies.MovingWindowRateLimiter] = \
            weakref.WeakKeyDictionary()
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def _item(self) -> RateLimitItem:
        return RateLimitItemPerMinute(self.per_minute, namespace="authfail")

    # -- sync --------------------------------------------------------------------------------------------------

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it may now."""
        def ask(limiter: sync_strategies.MovingWindowRateLimiter) -> int | None:
            if limiter.test(self._item(), address):
                return None  # the usual answer costs one round trip; the wait only when blocked
            return _wait(limiter.get_window_stats(self._item(), address))

        wait: int | None = self._sync(ask)
        return wait

    def failed(self, address: str) -> None:
        self._sync(lambda limiter: limiter.hit(self._item(), address))

    def _sync(self, action: Callable[[sync_strategies.MovingWindowRateLimiter], Any]) -> Any:
        shared = self._sync_limiter()
        if shared is not None:
            try:
                return action(shared)
            except Exception as exc:
                self._went_down(exc)
        return action(self._memory)

    def _sync_limiter(self) -> sync_strategies.MovingWindowRateLimiter | None:
        if self._redis is None or self.clock() < self._down_until:
            return None
        with self._lock:
            if self._sync_shared is None:
                url, prefix = self._redis
                self._sync_shared = sync_strategies.MovingWindowRateLimiter(RedisStorage(
                    url, key_prefix=f"{prefix}authfail", wrap_exceptions=True, socket_timeout=REDIS_TIMEOUT,
                    socket_connect_timeout=REDIS_TIMEOUT))
            return self._sync_shared

    # -- async -------------------------------------------------------------------------------------------------

    async def aretry_after(self, address: str) -> int | None:
        shared = self._async_limiter()
        if shared is not None:
            try:
                if await shared.test(self._item(), address):
                    return None
                return _wait(await shared.get_window_stats(self._item(), address))
            except Exception as exc:
                self._went_down(exc)
        return self.retry_after_in_memory(address)

    async def afailed(self, address: str) -> None:
        shared = self._async_limiter()
        if shared is not None:
            try:
                await shared.hit(self._item(), address)
                return
            except Exception as exc:
                self._went_down(exc)
        self._memory.hit(self._item(), address)

    def retry_after_in_memory(self, address: str) -> int | None:
        if self._memory.test(self._item(), address):
            return None
        return _wait(self._memory.get_window_stats(self._item(), address))

    def _async_limiter(self) -> async_strategies.MovingWindowRateLimiter | None:
        if self._redis is None or self.clock() < self._down_until:
            return None
        loop = asyncio.get_running_loop()
        found = self._async_shared.get(loop)
        if found is None:
            url, prefix = self._redis
            storage = AsyncRedisStorage(url if url.startswith("async+") else f"async+{url}", implementation="redispy",
                                        key_prefix=f"{prefix}authfail", wrap_exceptions=True,
                                        socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
            found = self._async_shared[loop] = async_strategies.MovingWindowRateLimiter(storage)
        return found

    def _went_down(self, exc: Exception) -> None:
        self._down_until = self.clock() + RETRY_REDIS_AFTER
        log.warning("Redis failed-authentication storage failed (%s); counting in this process for %.0f s", exc,
                    RETRY_REDIS_AFTER)

    def clear(self) -> None:
        """Forget this process's counts (the shared ones expire with their window)."""
        self._memory = sync_strategies.MovingWindowRateLimiter(MemoryStorage())


def _wait(stats: WindowStats) -> int:
    return max(1, math.ceil(float(stats.reset_time) - time.time()))
