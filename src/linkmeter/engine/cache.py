"""The in-memory result cache (an LRU with expiry, bounded in bytes) and in-flight call coalescing (single flight)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

import orjson
from cachetools import TLRUCache

from linkmeter.engine.ports import CacheEntry as CacheEntry  # named here too: MemoryCache's callers build them

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # LINKMETER_CACHE_MEMORY: per process
# An answer parsed into Python objects takes a few times its JSON length (tracemalloc over orjson.loads:
# 4-5x for answer-shaped dicts and lists of short strings and numbers, 1x for one long text).
PYTHON_OVERHEAD = 4
ENTRY_BASE = 400  # bytes per entry whatever its answer: the key, the entry, the LRU's and expiry heap's records


class _Slot(NamedTuple):
    entry: CacheEntry
    size: int
    ttl: float


def _expires(_key: str, slot: _Slot, now: float) -> float:
    return now + slot.ttl


def _size_of(slot: _Slot) -> int:
    return slot.size


def estimated_size(key: str, json_length: int) -> int:
    """Bytes an entry is counted for: from the length of its answer as JSON (what Redis stores)."""
    return ENTRY_BASE + len(key) + json_length * PYTHON_OVERHEAD


def json_length(entry: CacheEntry) -> int | None:
    """The entry's signals and raw answer as JSON, in bytes; None when they are not JSON."""
    try:
        return len(orjson.dumps((entry.signals, entry.raw), option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, ValueError, RecursionError):  # orjson.JSONEncodeError is a TypeError
        return None


class MemoryCache:
    """An LRU cache with per-entry expiry for one process, bounded by ``max_bytes`` (estimated from each
    answer's JSON length): over budget it drops the least recently used entries; an entry bigger than the
    whole budget is not kept (0: nothing is)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: TLRUCache[str, _Slot] | None = (
            TLRUCache(max_bytes, _expires, timer=clock, getsizeof=_size_of) if max_bytes > 0 else None)
        self._clock = clock

    async def get(self, key: str) -> CacheEntry | None:
        return self.peek(key)

    def peek(self, key: str) -> CacheEntry | None:
        """``get`` without awaiting: everything this cache holds is in this process."""
        slot = self._data.get(key) if self._data is not None else None  # an expired entry reads as missing
        return slot.entry if slot is not None else None

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        length = json_length(entry)
        # Not JSON (no provider answers so; a test double may): counted by its text, never for free.
        self.put(key, entry, ttl, length if length is not None else len(repr(entry)))

    def put(self, key: str, entry: CacheEntry, ttl: float, json_length: int) -> None:
        """``set`` with the entry's JSON length already known (the Redis cache has just encoded it)."""
        if ttl <= 0 or self._data is None:
            return
        try:
            self._data[key] = _Slot(entry, estimated_size(key, json_length), ttl)
        except ValueError:  # bigger than the whole budget: not kept, nor an older answer for the same key
            self._data.pop(key, None)

    @property
    def bytes_used(self) -> int:
        """The estimated bytes of the entries held (expired ones included until they are dropped)."""
        return int(self._data.currsize) if self._data is not None else 0

    def __len__(self) -> int:
        return len(self._data) if self._data is not None else 0

    async def entries(self, provider: str, *, limit: int) -> int | None:
        start, count = f"{provider}:", 0
        for key in list(self._data or ()):  # iterating skips expired entries
            if key.startswith(start):
                count += 1
                if count > limit:
                    break
        return count


class SingleFlight[T]:
    """Coalesces identical calls in flight: the first caller runs the call, later callers await its
    outcome. A follower's cancellation never touches the call; if the first caller is cancelled (its URL
    hit its deadline) a follower that is still waiting takes the call over."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}

    def in_flight(self, key: str) -> bool:
        return key in self._inflight

    async def run(self, key: str, factory: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, bool]:
        """Return (result, joined): joined is True when this caller shared another caller's call."""
        while (future := self._inflight.get(key)) is not None:
            try:
                return await asyncio.shield(future), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not future.cancelled() or (task is not None and task.cancelling()):
                    raise  # we are the one being cancelled
                # The leader was cancelled, not us: loop and take the call over.
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await factory()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no follower to read it
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
