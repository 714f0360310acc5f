"""Provider health: from the engine this process runs, else what the environment implies (and the Redis the
workers share): disabled providers, breakers, caches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from linkmeter.assembly import build_engine
from linkmeter.engine.cache import CacheEntry, MemoryCache
from linkmeter.engine.ports import ResultCache
from linkmeter.engine.state import EngineState
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.jobs import health
from linkmeter.web.jobs.health import ProviderCache, engine_health, engine_view, forget_counts
from tests.web.conftest import UNREACHABLE_REDIS_URL, SharedRedis, use_engine

NAMES = {cls.name for cls in PROVIDER_CLASSES}


@pytest.fixture(autouse=True)
def no_engine() -> Iterator[None]:
    use_engine(None)
    yield
    use_engine(None)


async def test_without_an_engine_the_environment_says_what_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_REDDIT_ENABLED", "false")
    disabled, breakers = await engine_health()
    assert disabled["reddit"] == "switched off by LINKMETER_REDDIT_ENABLED"
    assert "page" not in disabled
    assert breakers == dict.fromkeys(NAMES, "unknown")


async def test_the_registered_engine_reports_its_breakers_and_disabled_providers() -> None:
    engine = build_engine({"LINKMETER_WAYBACK_ENABLED": "false"})
    use_engine(engine)
    try:
        for _ in range(engine.plan.by_name("rdap").policy.breaker_threshold):
            await engine.state.breakers.record("rdap", False, engine.plan.by_name("rdap").policy.breaker_threshold)
        disabled, breakers = await engine_health()
    finally:
        await engine.close()
    # wayback switched off, and every provider that cannot run without a key it was not given
    keyed = {cls.name for cls in PROVIDER_CLASSES if cls.requires_key}
    assert set(disabled) == {"wayback"} | keyed
    assert all(disabled[name] == f"no API key: set LINKMETER_{name.upper()}_API_KEY" for name in keyed)
    assert breakers["rdap"] == "open" and breakers["page"] == "closed" and set(breakers) == NAMES


# --- the provider caches ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_counts() -> Iterator[None]:
    forget_counts()
    yield
    forget_counts()


async def fill(cache: ResultCache, provider: str, count: int, *, ttl: float = 600.0) -> None:
    for number in range(count):
        await cache.set(f"{provider}:key-{number}", CacheEntry({}, None, 0.0), ttl)


async def test_an_embedded_engine_reports_its_memory_cache_entries_and_policies() -> None:
    engine = build_engine({"LINKMETER_DNS_CACHE_TTL": "0"})
    use_engine(engine)
    try:
        assert isinstance(engine.state.cache, MemoryCache)
        await fill(engine.state.cache, "rdap", 3)
        await fill(engine.state.cache, "page", 1)
        await fill(engine.state.cache, "page", 1, ttl=-1)  # not stored: never counted
        caches = (await engine_view()).caches
    finally:
        await engine.close()
    assert set(caches) == NAMES
    assert caches["rdap"] == ProviderCache(ttl=86400.0, store="memory", entries=3, more=False)
    assert caches["rdap"].location == "this process (memory)"
    assert caches["page"].entries == 1 and caches["page"].ttl == 60.0
    assert caches["wayback"].entries == 0
    assert caches["dns"].ttl == 0.0  # LINKMETER_DNS_CACHE_TTL=0: not cached


async def test_counting_stops_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "ENTRIES_LIMIT", 3)
    engine = build_engine({})
    use_engine(engine)
    try:
        await fill(engine.state.cache, "rdap", 5)
        await fill(engine.state.cache, "page", 3)
        caches = (await engine_view()).caches
    finally:
        await engine.close()
    assert (caches["rdap"].entries, caches["rdap"].more) == (3, True)  # "more than 3"
    assert (caches["page"].entries, caches["page"].more) == (3, False)  # exactly 3


async def test_counts_are_reused_for_a_while_then_counted_again() -> None:
    now = [1000.0]
    engine = build_engine({})
    use_engine(engine, clock=lambda: now[0])
    try:
        await fill(engine.state.cache, "rdap", 1)
        assert (await engine_view()).caches["rdap"].entries == 1
        await fill(engine.state.cache, "rdap", 4)
        now[0] += health.COUNTS_FOR - 1
        assert (await engine_view()).caches["rdap"].entries == 1  # the 3-second refresh counts nothing
        assert (await engine_view(caches=False)).caches == {}
        now[0] += 1
        assert (await engine_view()).caches["rdap"].entries == 4
        await fill(engine.state.cache, "rdap", 5)
        use_engine(engine)  # (re)installing a runtime with an engine forgets the counts
        assert (await engine_view()).caches["rdap"].entries == 5
    finally:
        await engine.close()


class HangingCache(MemoryCache):
    """A cache whose counting never ends (or fails, for ``fail``)."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail

    async def entries(self, provider: str, *, limit: int) -> int | None:
        if self.fail:
            raise RuntimeError("broken")
        await asyncio.Event().wait()
        return 0


@pytest.mark.parametrize("fail", [False, True])
async def test_a_cache_that_cannot_count_gives_unknown_quickly(monkeypatch: pytest.MonkeyPatch, fail: bool) -> None:
    monkeypatch.setattr(health, "COUNT_TIMEOUT", 0.2)
    engine = build_engine({}, state=EngineState(cache=HangingCache(fail=fail)))
    use_engine(engine)
    try:
        started = time.monotonic()
        view = await engine_view()
        elapsed = time.monotonic() - started
    finally:
        await engine.close()
    assert elapsed < 1.0  # the providers are counted together, each within COUNT_TIMEOUT
    assert {c.entries for c in view.caches.values()} == {None} and view.breakers["page"] == "closed"


async def test_a_cache_that_cannot_count_at_all_is_unknown() -> None:
    class PlainCache:
        async def get(self, key: str) -> CacheEntry | None:
            return None

        async def set(self, key: str, entry: CacheEntry, ttl: float) -> None:
            return None

    engine = build_engine({}, state=EngineState(cache=PlainCache()))
    use_engine(engine)
    try:
        caches = (await engine_view()).caches
    finally:
        await engine.close()
    assert caches["rdap"] == ProviderCache(ttl=86400.0, store="memory", entries=None)


async def test_without_an_engine_or_redis_the_caches_are_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINKMETER_REDIS_URL", raising=False)
    monkeypatch.setenv("LINKMETER_RDAP_CACHE_TTL", "120")
    caches = (await engine_view()).caches
    assert caches["rdap"] == ProviderCache(ttl=120.0, store="unknown", entries=None)
    assert caches["rdap"].location == "unknown"


async def test_with_bad_settings_the_caches_keep_the_providers_own_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_RDAP_CACHE_TTL", "soon")
    view = await engine_view()
    assert "LINKMETER_RDAP_CACHE_TTL" in view.disabled["rdap"]
    assert view.caches["rdap"] == ProviderCache(ttl=86400.0, store="unknown", entries=None)


async def test_without_an_engine_the_caches_the_workers_share_in_redis_are_counted(worker_redis: SharedRedis) -> None:
    await worker_redis.fill("rdap", 4)
    await worker_redis.fill("hackernews", 2)
    view = await engine_view()
    assert view.caches["rdap"] == ProviderCache(ttl=86400.0, store="redis", entries=4)
    assert view.caches["rdap"].location == "shared (Redis)"
    assert view.caches["hackernews"].entries == 2 and view.caches["page"].entries == 0
    assert view.breakers["page"] == "closed"


async def test_an_embedded_engine_on_redis_counts_the_shared_cache(worker_redis: SharedRedis) -> None:
    await worker_redis.fill("rdap", 2)  # another process's entries
    engine = build_engine({"LINKMETER_REDIS_URL": worker_redis.url, "LINKMETER_REDIS_PREFIX": worker_redis.prefix})
    use_engine(engine)
    try:
        await fill(engine.state.cache, "rdap", 3, ttl=600.0)  # this one's: key-0..2, two of them the same keys
        await fill(engine.state.cache, "dns", 1, ttl=600.0)
        caches = (await engine_view()).caches
    finally:
        await engine.close()
    assert caches["rdap"] == ProviderCache(ttl=86400.0, store="redis", entries=3)
    assert caches["dns"].entries == 1


async def test_an_unreachable_redis_gives_unknown_counts_quickly(worker_redis: SharedRedis,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_REDIS_URL", UNREACHABLE_REDIS_URL)
    started = time.monotonic()
    view = await engine_view()
    assert time.monotonic() - started < 2.0
    assert {c.entries for c in view.caches.values()} == {None}
    assert {c.store for c in view.caches.values()} == {"redis"}
    assert set(view.breakers.values()) == {"unknown"}
    engine = build_engine({"LINKMETER_REDIS_URL": UNREACHABLE_REDIS_URL})
    use_engine(engine)
    try:
        started = time.monotonic()
        caches = (await engine_view()).caches
        assert time.monotonic() - started < 2.0
    finally:
        await engine.close()
    assert {c.entries for c in caches.values()} == {None} and {c.store for c in caches.values()} == {"redis"}
