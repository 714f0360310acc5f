"""The in-memory result cache (an LRU with expiry) and in-flight call coalescing (single flight)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from linkmeter.engine.ports import CacheEntry as CacheEntry  # named here too: MemoryCache's callers build them


class MemoryCache:
    """A bounded LRU cache with per-entry expiry, for one process."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: OrderedDict[str, tuple[float, CacheEntry]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> CacheEntry | None:
        return self.peek(key)

    def peek(self, key: str) -> CacheEntry | None:
        """``get`` without awaiting: everything this cache holds is in this process."""
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

    async def entries(self, provider: str, *, limit: int) -> int | None:
        start, now, count = f"{provider}:", self._clock(), 0
        for key, (expires, _) in list(self._data.items()):
            if expires > now and key.startswith(start):
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
