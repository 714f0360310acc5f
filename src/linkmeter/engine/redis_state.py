"""Engine state shared by many worker processes through Redis: rate limits, circuit breakers, result caches.

Each store implements the port of its in-memory twin (``RateLimiter``, ``CircuitBreakers``, ``ResultCache``)
with the same semantics, but the state lives in Redis, so it holds for every process together:

- ``RedisRateLimiter``: GCRA, one Lua script per ``reserve`` (atomic, one round trip). Times come from the
  Redis server (``TIME`` inside the scripts), so the workers' clocks do not matter. Keys
  ``<prefix>rl:{<name>}:tat`` and ``...:pause`` expire once they no longer hold anything back.
- ``RedisCircuitBreakers``: one hash per provider (``<prefix>cb:{<name>}``), changed by Lua scripts. After the
  cooldown exactly one probe is let through across all workers; the probe holds a lease (default: the
  cooldown): a probe that never reports (its worker died) lets the next probe through when its lease ends.
  An idle breaker's hash expires after ``idle_ttl`` (one day).
- ``RedisCache``: JSON values under ``<prefix>cache:<key>`` (keys over 200 characters are hashed) with a TTL
  (``SET PX``). A value that JSON cannot encode is not cached (a debug log line), never an error. In front
  of it each process keeps a small LRU near-cache of the entries it wrote or read, until their own expiry
  (a cached result never changes during its TTL, so the near-cache shows nothing another process would not).

Round trips: breaker states and pauses are mirrored in each process by pub/sub (``redis_events``), so a
call that succeeds costs no breaker or pause round trip; a near-cache hit costs none at all. What is left per
upstream call: the cache read on a miss and the write, and ``reserve`` for a provider with a rate limit (the
limit must hold exactly across processes, so every slot is taken in Redis), plus, when the slot lay ahead, one
read of the pause as the call wakes (``paused_for(exact=True)``: a pause's event may still be on its way).

Failure policy: Redis being slow or unreachable never hangs or crashes the engine. Every call has a short
timeout (socket connect and read timeouts, 0.5 s by default, no client retries, plus an overall bound).
When a call fails, the process stops asking Redis for ``retry_after`` seconds (1 s); then one call at a time
tries again until one succeeds. Meanwhile cache reads are misses (but for the near-cache) and writes are
dropped, the rate limiter and the breakers fall back to this process's in-memory ones (so while Redis is
down each process enforces each provider's rate on its own: N workers may together send up to N times the
rate). A warning is logged when Redis becomes unavailable (at most once a minute per store) and an info line
when it is back. Cache reads and writes go through one auto-pipeline per process (``redis_pipeline``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from linkmeter.engine.cache import CacheEntry, MemoryCache
from linkmeter.engine.limits import BreakerState, CircuitBreakers, MemoryCircuitBreakers, MemoryRateLimiter, RateLimiter
from linkmeter.engine.redis_events import MirroredBreaker, StateMirror
from linkmeter.engine.redis_pipeline import AutoPipeline
from linkmeter.engine.runner import EngineState

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "linkmeter:"
DEFAULT_TIMEOUT = 0.5  # seconds, per connect and per read
DEFAULT_RETRY_AFTER = 1.0  # after a failure, leave Redis alone this long
LOG_EVERY = 60.0  # at most one "Redis unavailable" warning per store per this many seconds
MAX_KEY_LENGTH = 200  # longer cache keys are stored under their SHA-256
BREAKER_IDLE_TTL = 86_400.0
# Per process. With ~200 URLs in flight a call can need three commands at once (limiter, breaker, cache):
# 50 connections ran out under load and turned cache hits into misses (docs/benchmarks.md); 500 did not.
MAX_CONNECTIONS = 500
ENTRIES_TIMEOUT = 2.0  # seconds for counting a provider's cache entries (a SCAN)
NEAR_CACHE_ENTRIES = 10_000  # per process, in front of the Redis cache


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
                        "breakers": "this process's own circuit breakers"}.get(store, "local state")
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
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format('%.0f', x) end
"""

# KEYS: tat, pause. ARGV: interval us, burst, max_wait us, us left of a pause the caller knows of (its own 429,
# which may not have reached Redis yet). Returns the wait in us, or -1 (nothing reserved).
_RESERVE = _NOW + """
local interval, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local paused = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now + tonumber(ARGV[4]))
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now, paused)
local wait = math.max(0, math.max(tat - interval * (burst - 1), paused) - now)
if wait > max_wait then return -1 end
tat = tat + interval
redis.call('SET', KEYS[1], fmt(tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return math.ceil(wait)
"""

# KEYS: pause. ARGV: seconds in us, channel, name. A shorter pause never shortens a longer one; a pause that
# lengthens the current one is published ("p <name> <us left>") for every process's mirror. Returns us left.
_PAUSE = _NOW + """
local untl = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > current then
  redis.call('SET', KEYS[1], fmt(untl), 'PX', math.ceil((untl - now) / 1000) + 1000)
  redis.call('PUBLISH', ARGV[2], 'p ' .. ARGV[3] .. ' ' .. fmt(untl - now))
  return fmt(untl - now)
end
return fmt(math.max(0, current - now))
"""

# KEYS: pause. Returns the us left of the pause.
_PAUSED_FOR = _NOW + """
return math.ceil(math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now))
"""


def _us(seconds: float) -> str:
    """Seconds as microseconds for a script argument (Lua's tonumber() takes no inf or nan)."""
    if not math.isfinite(seconds):
        return "1e15" if seconds > 0 else "-1e15"
    return repr(max(-1e9, min(seconds, 1e9)) * 1e6)


class RedisRateLimiter:
    """GCRA shared by every process using the same Redis and prefix; see the module docstring."""

    def __init__(self, link: RedisLink, fallback: RateLimiter | None = None) -> None:
        self._link = link
        self._fallback = fallback or MemoryRateLimiter()
        client = link.client
        self._reserve, self._pause = client.register_script(_RESERVE), client.register_script(_PAUSE)
        self._paused_for = client.register_script(_PAUSED_FOR)

    def _keys(self, name: str) -> tuple[str, str]:
        base = f"{self._link.prefix}rl:{{{name}}}"  # {name}: a hash tag, both keys in one Cluster slot
        return f"{base}:tat", f"{base}:pause"

    async def reserve(self, name: str, rate: float, burst: int, max_wait: float) -> float | None:
        known = self._link.mirror.known_pause
        args: list[str | int] = [_us(1 / rate), max(burst, 1), _us(max_wait), _us(known(name))]
        try:
            wait = int(await self._link.call("rate limiter", lambda: self._reserve(self._keys(name), args)))
        except RedisUnavailable:
            return await self._fallback.reserve(name, rate, burst, max_wait)
        if 0 <= wait < known(name) * 1e6:  # a 429 reached this process meanwhile: that slot is void
            return await self.reserve(name, rate, burst, max_wait)
        return None if wait < 0 else wait / 1e6

    async def pause(self, name: str, seconds: float) -> None:
        if seconds <= 0:
            return
        mirror = self._link.mirror
        # Known here before the round trip: this process's calls must not go out while it is on its way.
        mirror.note_pause(name, seconds)
        args = [_us(seconds), mirror.channel, name]
        try:
            left = await self._link.call("rate limiter", lambda: self._pause(self._keys(name)[1:], args))
        except RedisUnavailable:
            await self._fallback.pause(name, seconds)
            return
        mirror.note_pause(name, int(left) / 1e6)  # a longer pause already set; the others learn ours by event

    async def paused_for(self, name: str, *, exact: bool = False) -> float:
        mirror = self._link.mirror
        left = mirror.paused_for(name)
        if left is None and mirror.ready and not exact:
            await mirror.sync("p", name, lambda: self._link.call(
                "rate limiter", lambda: self._paused_for(self._keys(name)[1:])))
            left = mirror.paused_for(name)
        if left is not None and (left > 0 or not exact):
            return left
        try:
            us = int(await self._link.call("rate limiter", lambda: self._paused_for(self._keys(name)[1:])))
        except RedisUnavailable:
            return await self._fallback.paused_for(name)
        mirror.note_pause(name, us / 1e6)
        return mirror.known_pause(name)  # with a 429 this process got while the read was on its way


# Breaker hash fields: f = consecutive failures, o = opened at (us), p = the probe's lease ends (us).
# A breaker's state as an event for the mirrors: "b <name> <seq> <failures> <opened us ago, or -1>".
# KEYS: breaker, seq. ARGV[4]: the name.
_STATE_EVENT = """
local function state_event(seq)
  local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
  local o = redis.call('HGET', KEYS[1], 'o')
  local ago = -1
  if o then ago = now - tonumber(o) end
  return 'b ' .. ARGV[4] .. ' ' .. seq .. ' ' .. f .. ' ' .. fmt(ago)
end
"""

# KEYS: breaker, seq. ARGV: cooldown us, lease us, idle ttl ms. Returns 1 (go ahead) or 0.
_ALLOW = _NOW + """
local opened = redis.call('HGET', KEYS[1], 'o')
if not opened then return 1 end
if now - tonumber(opened) < tonumber(ARGV[1]) then return 0 end
local lease = redis.call('HGET', KEYS[1], 'p')
if lease and tonumber(lease) > now then return 0 end
redis.call('HSET', KEYS[1], 'p', fmt(now + tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: breaker, seq. ARGV: success (1/0), threshold, idle ttl ms, name, channel. Returns the state event,
# published when the state changed. The seq key has no expiry: one small key per provider name.
_RECORD = _NOW + _STATE_EVENT + """
if ARGV[1] == '1' then
  if redis.call('DEL', KEYS[1]) == 0 then return state_event(redis.call('GET', KEYS[2]) or '0') end
else
  local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
  if redis.call('HEXISTS', KEYS[1], 'p') == 1 or failures >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'o', fmt(now))
    redis.call('HDEL', KEYS[1], 'p')
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local event = state_event(redis.call('INCR', KEYS[2]))
redis.call('PUBLISH', ARGV[5], event)
return event
"""

# KEYS: breaker, seq. ARGV[4]: the name. Returns the state event (for a mirror to start from).
_READ = _NOW + _STATE_EVENT + """
return state_event(redis.call('GET', KEYS[2]) or '0')
"""

# KEYS: breaker. ARGV: cooldown us. Returns 0 closed, 1 open, 2 half open.
_STATE = _NOW + """
local opened = redis.call('HGET', KEYS[1], 'o')
if not opened then return 0 end
if redis.call('HEXISTS', KEYS[1], 'p') == 1 or now - tonumber(opened) >= tonumber(ARGV[1]) then return 2 end
return 1
"""

_STATES = {0: BreakerState.CLOSED, 1: BreakerState.OPEN, 2: BreakerState.HALF_OPEN}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCircuitBreakers:
    """Breakers shared by every process using the same Redis and prefix; see the module docstring.

    ``probe_lease``: how long a probe may take before another one is let through (None: the cooldown)."""

    def __init__(self, link: RedisLink, fallback: CircuitBreakers | None = None, *,
                 probe_lease: float | None = None, idle_ttl: float = BREAKER_IDLE_TTL) -> None:
        self._link = link
        self._fallback = fallback or MemoryCircuitBreakers()
        self._lease = probe_lease
        self._ttl_ms = max(1, math.ceil(idle_ttl * 1000))
        client = link.client
        self._allow, self._record = client.register_script(_ALLOW), client.register_script(_RECORD)
        self._read, self._state = client.register_script(_READ), client.register_script(_STATE)

    def _keys(self, name: str) -> list[str]:
        base = f"{self._link.prefix}cb:{{{name}}}"
        return [base, f"{base}:seq"]

    async def _mirrored(self, name: str) -> MirroredBreaker | None:
        mirror = self._link.mirror
        entry = mirror.breaker(name)
        if entry is None and mirror.ready:
            await mirror.sync("b", name, lambda: self._link.call(
                "breakers", lambda: self._read(self._keys(name), [0, 0, 0, name])))
            entry = mirror.breaker(name)
        return entry

    async def allow(self, name: str, threshold: int, cooldown: float) -> bool:
        entry = await self._mirrored(name)
        if entry is not None:
            if entry.opened_at is None:
                return True
            if self._link.mirror.now() - entry.opened_at < cooldown:
                return False
            # After the cooldown, Redis decides which one call (in all processes) is the probe.
        lease = cooldown if self._lease is None else self._lease
        args: list[str | int] = [_us(cooldown), _us(max(lease, 0.001)), self._ttl_ms]
        try:
            return bool(int(await self._link.call("breakers", lambda: self._allow(self._keys(name), args))))
        except RedisUnavailable:
            return await self._fallback.allow(name, threshold, cooldown)

    async def record(self, name: str, success: bool, threshold: int) -> None:
        if success:
            entry = await self._mirrored(name)
            if entry is not None and entry.failures == 0 and entry.opened_at is None:
                return  # nothing to reset anywhere
        mirror = self._link.mirror
        args: list[str | int] = [int(success), threshold, self._ttl_ms, name, mirror.channel]
        try:
            event = await self._link.call("breakers", lambda: self._record(self._keys(name), args))
        except RedisUnavailable:
            await self._fallback.record(name, success, threshold)
            return
        mirror.apply_breaker(_text(event))  # ours at once; the others' through the event

    async def state(self, name: str, cooldown: float) -> BreakerState:
        try:
            code = await self._link.call("breakers", lambda: self._state(self._keys(name)[:1], [_us(cooldown)]))
        except RedisUnavailable:
            return await self._fallback.state(name, cooldown)
        return _STATES[int(code)]


class RedisCache:
    """Provider results as JSON with a TTL, shared by every process using the same Redis and prefix, with a
    near-cache of ``near_entries`` in this process (0: none)."""

    def __init__(self, link: RedisLink, *, near_entries: int = NEAR_CACHE_ENTRIES) -> None:
        self._link = link
        self._near = MemoryCache(near_entries) if near_entries > 0 else None

    def redis_key(self, key: str) -> str:
        """``<prefix>cache:<provider>:<key>``; a key over 200 characters as its SHA-256 (the provider kept, so
        a provider's entries can be counted)."""
        if len(key) > MAX_KEY_LENGTH:
            provider, _, rest = key.partition(":")
            key = f"{provider[:40]}:sha256:" + hashlib.sha256(rest.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self._link.prefix}cache:{key}"

    async def entries(self, provider: str, *, limit: int) -> int | None:
        """SCANs Redis (a bounded walk: at most ``limit`` + 1 keys counted); None when Redis is unavailable."""
        pattern = f"{self._link.prefix}cache:{_glob_escape(provider)}:*"

        async def count() -> int:
            found = 0
            async for _ in self._link.client.scan_iter(match=pattern, count=1000):
                found += 1
                if found > limit:
                    break
            return found

        if self._link.down:
            return None
        try:  # not through RedisLink.call: a long walk must not mark Redis down for the engine's own calls
            async with asyncio.timeout(ENTRIES_TIMEOUT):
                return await count()
        except (RedisError, OSError, TimeoutError):
            return None

    def peek(self, key: str) -> CacheEntry | None:
        """The near-cache's entry, without a round trip (None: ask ``get``)."""
        return self._near.peek(key) if self._near is not None else None

    async def get(self, key: str) -> CacheEntry | None:
        if self._near is not None and (near := self._near.peek(key)) is not None:
            return near
        try:
            data: Any = await self._link.call(
                "cache", lambda: self._link.pipeline.execute("GET", self.redis_key(key)))
        except RedisUnavailable:
            return None
        if data is None:
            return None
        try:
            value = orjson.loads(data)
            entry = CacheEntry(dict(value["s"]), value["r"], float(value["t"]))
            expires = float(value.get("x", 0.0))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.debug("unreadable cache entry %s ignored: %s", key, exc)
            return None
        if self._near is not None and (left := expires - time.time()) > 0:
            await self._near.set(key, entry, left)
        return entry

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if ttl <= 0:
            return
        expires = time.time() + ttl  # wall clock: other processes (hosts) keep it in their near-caches until then
        try:
            text = orjson.dumps({"s": entry.signals, "r": entry.raw, "t": entry.stored_at, "x": expires},
                                option=orjson.OPT_NON_STR_KEYS)
        except (TypeError, ValueError, RecursionError) as exc:  # orjson.JSONEncodeError is a TypeError
            log.debug("result for %s not cached: not JSON-serialisable (%s)", key, exc)
            return
        if self._near is not None:
            await self._near.set(key, entry, ttl)
        px = max(1, math.ceil(ttl * 1000))
        try:
            await self._link.call("cache", lambda: self._link.pipeline.execute("SET", self.redis_key(key), text,
                                                                              "PX", px))
        except RedisUnavailable:
            return


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def redis_state(url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = DEFAULT_TIMEOUT) -> EngineState:
    """An EngineState whose cache, limiter and breakers live in Redis at ``url``, over one client (connection
    pool) for this process, closed by ``EngineState.aclose()`` (``Engine.close()`` calls it). Build it in
    the process (after any fork) that uses it. Raises ValueError for an unusable URL."""
    link = RedisLink.from_url(url, prefix=prefix, timeout=timeout)
    return EngineState(cache=RedisCache(link), limiter=RedisRateLimiter(link),
                       breakers=RedisCircuitBreakers(link), closer=link.aclose)
