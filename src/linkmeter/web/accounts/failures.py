"""Failed authentication per client address (bad keys, failed logins): a moving minute (the ``limits`` library),
so guessing is slow; never counted against any account. Counted in this process's memory embedded; in Redis
(``LINKMETER_REDIS_URL``) when several web processes serve, so together they allow an address no more failures
than one would. When Redis fails the process counts in its own memory for a while (each process then limits
on its own) and logs it.

Only failures cost a count: a request is first checked against this process's note of the addresses it
knows are blocked (no I/O), and an address is noted when a failure it made here finds it at its limit. A
blocked address's next failure in any process is refused (429) by the shared count, and noted there; until
then that process checks its keys as usual. Both the sync path (WSGI, tests, the login view) and the async one
(``linkmeter serve``) are served; the async one never blocks its event loop on Redis (a client per loop)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

from limits import RateLimitItem, RateLimitItemPerMinute
from limits import strategies as sync_strategies
from limits.aio import strategies as async_strategies
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.storage import MemoryStorage, RedisStorage
from limits.util import WindowStats

log = logging.getLogger(__name__)

RETRY_REDIS_AFTER = 5.0  # seconds the in-memory fallback lasts before Redis is tried again
REDIS_TIMEOUT = 0.5
MAX_NOTED = 50_000  # blocked addresses this process keeps a note of (the oldest go first)

type SyncLimiter = sync_strategies.MovingWindowRateLimiter
type AsyncLimiter = async_strategies.MovingWindowRateLimiter


class FailureLimiter:
    """``per_minute`` failed authentications per address in any minute, then 429 until the oldest leaves the
    window. ``redis``: (url, key prefix) to share the counts between processes."""

    def __init__(self, per_minute: int, redis: tuple[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._memory: SyncLimiter = sync_strategies.MovingWindowRateLimiter(MemoryStorage())
        self._redis = redis
        self._sync_shared: SyncLimiter | None = None
        self._async_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncLimiter] = \
            weakref.WeakKeyDictionary()
        self._down_until = 0.0
        self._blocked: OrderedDict[str, float] = OrderedDict()  # address -> until (clock)
        self._lock = threading.Lock()

    def _item(self) -> RateLimitItem:
        return RateLimitItemPerMinute(self.per_minute, namespace="authfail")

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again by this process's note, or None (no I/O)."""
        with self._lock:
            until = self._blocked.get(address)
            if until is None:
                return None
            left = until - self.clock()
            if left <= 0:
                del self._blocked[address]
                return None
            return max(1, math.ceil(left))

    def _note(self, address: str, wait: int) -> None:
        with self._lock:
            self._blocked[address] = self.clock() + wait
            self._blocked.move_to_end(address)
            while len(self._blocked) > MAX_NOTED:
                self._blocked.popitem(last=False)

    # -- counting a failure: the answer is the wait when it was over the limit (429), else None (401) ---------

    def failed(self, address: str) -> int | None:
        shared = self._sync_limiter()
        if shared is not None:
            try:
                return self._count(shared, address)
            except Exception as exc:
                self._went_down(exc)
        return self._count(self._memory, address)

    async def afailed(self, address: str) -> int | None:
        shared = self._async_limiter()
        if shared is not None:
            try:
                item = self._item()
                counted = await shared.hit(item, address)
                if counted and await shared.test(item, address):
                    return None
                return self._blocked_now(address, await shared.get_window_stats(item, address), counted)
            except Exception as exc:
                self._went_down(exc)
        return self._count(self._memory, address)

    def _count(self, limiter: SyncLimiter, address: str) -> int | None:
        item = self._item()
        counted = limiter.hit(item, address)
        if counted and limiter.test(item, address):
            return None
        return self._blocked_now(address, limiter.get_window_stats(item, address), counted)

    def _blocked_now(self, address: str, stats: WindowStats, counted: bool) -> int | None:
        """The address is at its limit: noted here; this failure's answer is 429 only when it was not
        counted (over the limit), as the failure that reached the limit was still within it."""
        wait = max(1, math.ceil(float(stats.reset_time) - time.time()))
        self._note(address, wait)
        return None if counted else wait

    # -- storages ----------------------------------------------------------------------------------------------

    def _sync_limiter(self) -> SyncLimiter | None:
        if self._redis is None or self.clock() < self._down_until:
            return None
        with self._lock:
            if self._sync_shared is None:
                url, prefix = self._redis
                self._sync_shared = sync_strategies.MovingWindowRateLimiter(RedisStorage(
                    url, key_prefix=f"{prefix}authfail", wrap_exceptions=True, socket_timeout=REDIS_TIMEOUT,
                    socket_connect_timeout=REDIS_TIMEOUT))
            return self._sync_shared

    def _async_limiter(self) -> AsyncLimiter | None:
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

    def counted_in_memory(self, address: str) -> int:
        """Failures of ``address`` in this process's own window (tests: where the counts went)."""
        return int(self.per_minute - self._memory.get_window_stats(self._item(), address).remaining)

    def clear(self) -> None:
        """Forget this process's counts and notes (the shared counts expire with their window)."""
        with self._lock:
            self._memory = sync_strategies.MovingWindowRateLimiter(MemoryStorage())
            self._blocked.clear()
