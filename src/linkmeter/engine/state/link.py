"""The one Redis client of a process (a connection pool), its failure policy, and what the Lua scripts share."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from linkmeter.engine.state import DEFAULT_PREFIX, DEFAULT_TIMEOUT
from linkmeter.engine.state.events import StateMirror
from linkmeter.engine.state.pipeline import AutoPipeline

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 1.0  # after a failure, leave Redis alone this long
LOG_EVERY = 60.0  # at most one "Redis unavailable" warning per store per this many seconds
# Per process. With ~200 URLs in flight a call can need three commands at once (limiter, breaker, cache):
# 50 connections ran out under load and turned cache hits into misses (docs/benchmarks.md); 500 did not.
MAX_CONNECTIONS = 500


class RedisUnavailable(Exception):
    """A Redis call failed or was not attempted (Redis is considered down); the caller falls back."""


class RedisLink:
    """The one Redis client of a process (a connection pool) and what its stores share about its health."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.retry_after = retry_after
        self._clock = clock
        self._down = False
        self._down_until = 0.0
        self._probing = False
        self._warned_at: dict[str, float] = {}
        self.mirror = StateMirror(client.pubsub, f"{prefix}events", retry_after=retry_after, clock=clock)
        self.pipeline = AutoPipeline(lambda: self.client)  # cache reads and writes, sent together

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = DEFAULT_TIMEOUT,
                 retry_after: float = DEFAULT_RETRY_AFTER) -> RedisLink:
        """Does not connect (connections are made on first use). Raises ValueError for an unusable URL."""
        # A blocking pool: with hundreds of URLs in flight, callers wait (briefly) for a free connection
        # instead of failing with "Too many connections" and falling back to local state.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
        )
        return cls(aioredis.Redis(connection_pool=pool), prefix=prefix, timeout=timeout, retry_after=retry_after)

    @property
    def down(self) -> bool:
        return self._down

    async def call[T](self, store: str, make: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call within the timeout. Raises RedisUnavailable when it fails (logged) or when
        Redis is considered down (not attempted)."""
        probe = False
        if self._down:
            if self._probing or self._clock() < self._down_until:
                raise RedisUnavailable
            self._probing = probe = True  # one call tries Redis again; the others keep falling back
        try:
            # Connect + send + read, each bounded by the socket timeouts: this bounds the whole call.
            async with asyncio.timeout(self.timeout * 3):
                result = await make()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(store, exc)
            raise RedisUnavailable from exc
        finally:
            if probe:
                self._probing = False
        if self._down:
            self._down = False
            log.info("Redis is reachable again: shared state in use")
        return result

    def _failed(self, store: str, exc: BaseException) -> None:
        now = self._clock()
        self._down = True
        self._down_until = now + self.retry_after
        if now - self._warned_at.get(store, -math.inf) >= LOG_EVERY:
            self._warned_at[store] = now
            degraded = {"cache": "this process's near-cache alone", "rate limiter": "this process's own rate limiter",
                        "breakers": "this process's own circuit breakers",
                        "budgets": "this process's own budget counts"}.get(store, "local state")
            log.warning("Redis unavailable for the %s (%s: %s): using %s until it is back",
                        store, type(exc).__name__, exc, degraded)

    async def ping(self) -> bool:
        """True when Redis answers (for health checks); never raises."""
        try:
            return bool(await self.call("ping", self.client.ping))
        except RedisUnavailable:
            return False

    async def aclose(self) -> None:
        try:
            await self.mirror.aclose()
            await self.pipeline.aclose()
        finally:
            await self.client.aclose(close_connection_pool=True)


# Server time in microseconds (integers stay exact in Lua's doubles up to 2^53 us, about 285 years).
SERVER_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format('%.0f', x) end
"""


def script_us(seconds: float) -> str:
    """Seconds as microseconds for a script argument (Lua's tonumber() takes no inf or nan)."""
    if not math.isfinite(seconds):
        return "1e15" if seconds > 0 else "-1e15"
    return repr(max(-1e9, min(seconds, 1e9)) * 1e6)


def script_text(value: object) -> str:
    """A script's string reply (bytes, or str when the client decodes) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
