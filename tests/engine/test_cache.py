"""The in-memory result cache: expiry, least-recently-used eviction within a byte budget."""

from __future__ import annotations

import pytest

from linkmeter.engine.cache import ENTRY_BASE, PYTHON_OVERHEAD, CacheEntry, MemoryCache, estimated_size, json_length


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def entry(text: str = "") -> CacheEntry:
    return CacheEntry({"x": 1}, {"answer": text}, 0)


def size_of(key: str, value: CacheEntry) -> int:
    length = json_length(value)
    assert length is not None
    return estimated_size(key, length)


async def test_an_entry_expires_after_its_ttl() -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    await cache.set("p:a", entry(), ttl=10)
    await cache.set("p:b", entry(), ttl=30)
    clock.now += 9.9
    assert await cache.get("p:a") == entry()
    clock.now += 0.2
    assert await cache.get("p:a") is None and cache.peek("p:b") == entry()
    assert await cache.entries("p", limit=10) == 1
    await cache.set("p:c", entry(), ttl=0)  # nothing to keep
    assert cache.peek("p:c") is None


async def test_over_budget_the_least_recently_used_entries_go_first() -> None:
    clock = Clock()
    one = size_of("p:a", entry("x" * 100))
    cache = MemoryCache(max_bytes=3 * one, clock=clock)
    for key in ("p:a", "p:b", "p:c"):
        await cache.set(key, entry("x" * 100), ttl=60)
    assert cache.bytes_used == 3 * one
    assert cache.peek("p:a") is not None  # a used: b is now the least recently used
    await cache.set("p:d", entry("x" * 100), ttl=60)
    assert cache.peek("p:b") is None
    assert all(cache.peek(k) is not None for k in ("p:a", "p:c", "p:d"))
    assert cache.bytes_used <= 3 * one
    await cache.set("p:e", entry("x" * 100 + "y" * 150), ttl=60)  # a big one pushes out as many as it needs
    assert cache.bytes_used <= 3 * one and cache.peek("p:e") is not None
    assert [k for k in ("p:a", "p:c", "p:d") if cache.peek(k) is not None] == ["p:d"]  # a and c: least recent


async def test_the_size_follows_the_answer_length() -> None:
    small, large = size_of("p:a", entry("x")), size_of("p:a", entry("x" * 10_001))
    assert large - small == 10_000 * PYTHON_OVERHEAD
    assert small > ENTRY_BASE


async def test_an_entry_bigger_than_the_budget_is_not_cached_nor_its_older_answer_kept() -> None:
    cache = MemoryCache(max_bytes=size_of("p:a", entry("x" * 100)))
    await cache.set("p:a", entry("x" * 100), ttl=60)
    assert cache.peek("p:a") is not None
    await cache.set("p:b", entry("x" * 101), ttl=60)
    assert cache.peek("p:b") is None and cache.peek("p:a") is not None  # refusing it evicted nothing
    await cache.set("p:a", entry("x" * 101), ttl=60)
    assert cache.peek("p:a") is None and cache.bytes_used == 0  # the stale answer does not stand in for it


async def test_a_budget_of_zero_keeps_nothing() -> None:
    cache = MemoryCache(max_bytes=0)
    await cache.set("p:a", entry(), ttl=60)
    assert cache.peek("p:a") is None and len(cache) == 0 and await cache.entries("p", limit=5) == 0


async def test_replacing_an_entry_counts_only_the_new_size() -> None:
    cache = MemoryCache()
    await cache.set("p:a", entry("x" * 1000), ttl=60)
    await cache.set("p:a", entry("x"), ttl=60)
    assert cache.bytes_used == size_of("p:a", entry("x")) and len(cache) == 1


async def test_an_answer_that_is_not_json_is_counted_by_its_text() -> None:
    cache = MemoryCache(max_bytes=10_000)
    await cache.set("p:a", CacheEntry({}, {1, 2, 3}, 0), ttl=60)  # a set: no JSON
    assert cache.peek("p:a") is not None and cache.bytes_used > ENTRY_BASE
    await cache.set("p:b", CacheEntry({}, {"x" * 5000}, 0), ttl=60)
    assert cache.peek("p:b") is None


@pytest.mark.parametrize("ttl", [10.0, 1e6])
async def test_entries_counts_live_entries_of_one_provider(ttl: float) -> None:
    clock = Clock()
    cache = MemoryCache(clock=clock)
    for i in range(5):
        await cache.set(f"p:{i}", entry(), ttl=ttl)
    await cache.set("q:0", entry(), ttl=ttl)
    assert await cache.entries("p", limit=10) == 5
    assert await cache.entries("p", limit=2) == 3  # stops past the limit
    clock.now += 11
    assert await cache.entries("p", limit=10) == (0 if ttl == 10.0 else 5)
