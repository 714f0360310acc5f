"""The result cache shared by every process through Redis (JSON with a TTL), with a near-cache in this one."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from typing import Any

import orjson
from redis.exceptions import RedisError

from linkmeter.engine.cache import DEFAULT_MAX_BYTES, MemoryCache
from linkmeter.engine.ports import CacheEntry
from linkmeter.engine.state.link import RedisLink, RedisUnavailable

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 200  # longer cache keys are stored under their SHA-256
ENTRIES_TIMEOUT = 2.0  # seconds for counting a provider's cache entries (a SCAN)


class RedisCache:
    """Provider results as JSON with a TTL, shared by every process using the same Redis and prefix, with a
    near-cache of at most ``near_bytes`` in this process (LINKMETER_CACHE_MEMORY; 0: none)."""

    def __init__(self, link: RedisLink, *, near_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._link = link
        self._near = MemoryCache(near_bytes) if near_bytes > 0 else None

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
            self._near.put(key, entry, left, len(data))
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
            self._near.put(key, entry, ttl, len(text))
        px = max(1, math.ceil(ttl * 1000))
        try:
            await self._link.call("cache", lambda: self._link.pipeline.execute("SET", self.redis_key(key), text,
                                                                              "PX", px))
        except RedisUnavailable:
            return


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
