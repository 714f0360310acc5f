"""Provider result caches (a port and its in-memory implementation) and in-flight call coalescing."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CacheEntry:
    signals: dict[str, Any]
    raw: Any
    stored_at: float


class ResultCache(Protocol):
    """Where successful provider results live for their TTL. Keys are ``provider:key`` strings."""

    async def get(self, key: str) -> CacheEntry | None: ...

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None: ...


class MemoryCache:
    """A bounded LRU cache with per-entry expiry, for one process."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: OrderedDict[str, tuple[float, CacheEntry]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> CacheEntry | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, entry = item
        if expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
        if ttl <= 0:
            return
        self._data[key] = (self._clock() + ttl, entry)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class SingleFlight[T]:
    """Coalesces identical calls in flight: the first caller starts the call as its own task and every
    caller awaits it, so one caller's cancellation (its URL hit its deadline) never cancels the others'."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Task[T]] = {}

    def in_flight(self, key: str) -> bool:
        return key in self._inflight

    async def run(self, key: str, factory: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, bool]:
        """Return (result, joined): joined is True when this caller shared another caller's call."""
        task = self._inflight.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.create_task(factory())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task), joined

    def _forget(self, key: str, task: asyncio.Task[T]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here so an orphaned failure is not logged as unhandled

    async def cancel_all(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
