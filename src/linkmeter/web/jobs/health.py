"""Provider health as the running engine sees it: which providers are disabled (and why), breaker states, and
the provider caches (policy, where they live, how many entries they hold)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from linkmeter.engine.ports import ResultCache
from linkmeter.engine.provider import Provider
from linkmeter.engine.runner import Engine
from linkmeter.engine.settings import EngineSettings, SettingsError
from linkmeter.providers.registry import PROVIDER_CLASSES

log = logging.getLogger(__name__)

UNKNOWN = "unknown"

# Where a provider cache lives (``ProviderCache.store``).
STORE_REDIS = "redis"  # shared by every process using the same Redis (and prefix)
STORE_MEMORY = "memory"  # the memory of this process (the engine it runs)
STORE_UNKNOWN = "unknown"  # no engine runs here and no Redis is configured
STORE_LABELS = {STORE_REDIS: "shared (Redis)", STORE_MEMORY: "this process (memory)", STORE_UNKNOWN: UNKNOWN}

ENTRIES_LIMIT = 100_000  # entries counted per provider; past it, "more than ENTRIES_LIMIT"
COUNT_TIMEOUT = 2.5  # seconds, over a cache's own bound (RedisCache counts within 2 s): never hangs a page
COUNTS_FOR = 30.0  # seconds a provider's count is reused (the page refreshes every 3 s: Redis is not SCANned each time)
UNKNOWN_COUNTS_FOR = 10.0  # seconds an "unknown" count is reused before trying again

_engine: Engine | None = None
_clock = time.monotonic  # for the counts' reuse (tests replace it)
# (where, provider) -> (reuse until (monotonic), entries or None). ``where`` (hashable) is the engine's cache
# object, or ("redis", url, prefix) for the Redis the workers share.
_counts: dict[tuple[object, str], tuple[float, int | None]] = {}


@dataclass(frozen=True, slots=True)
class ProviderCache:
    """A provider's result cache: its TTL (seconds, 0: results are not cached), where it lives (a ``STORE_*``),
    and its live entries (None: cannot tell now; ``more``: there are more than ``entries``, the limit)."""

    ttl: float
    store: str
    entries: int | None
    more: bool = False

    @property
    def location(self) -> str:
        return STORE_LABELS.get(self.store, self.store)


@dataclass(frozen=True, slots=True)
class EngineView:
    disabled: dict[str, str]  # disabled provider -> reason
    breakers: dict[str, str]  # provider -> closed, open, half_open or unknown
    caches: dict[str, ProviderCache]  # provider -> its cache (empty when not asked for)


def register_engine(engine: Engine | None) -> None:
    """`linkmeter serve` registers the engine its runner uses (None when it stops)."""
    global _engine
    _engine = engine
    forget_counts()  # counts of another engine's cache would be wrong (and would keep it alive)


def registered_engine() -> Engine | None:
    return _engine


def forget_counts() -> None:
    """Drop the cache entry counts this process reuses (the next view counts again)."""
    _counts.clear()


async def engine_health() -> tuple[dict[str, str], dict[str, str]]:
    """(disabled provider -> reason, provider -> breaker state: closed, open, half_open or unknown).

    From the engine running in this process; without one (e.g. a management shell), the disabled reasons
    the environment implies, and the breakers the workers share in Redis when LINKMETER_REDIS_URL is set
    (else every breaker ``unknown``).
    """
    view = await engine_view(caches=False)
    return view.disabled, view.breakers


async def engine_view(*, caches: bool = True) -> EngineView:
    """``engine_health()`` plus, with ``caches``, every provider's cache, from the same source: the engine's
    own cache (memory, or Redis when it runs on shared state), else the cache the workers share in Redis
    (LINKMETER_REDIS_URL), else unknown. Entry counts are reused for ``COUNTS_FOR`` seconds; a cache that
    cannot answer (Redis down or slow) gives None, within ``COUNT_TIMEOUT`` at most."""
    engine = _engine
    if engine is None:
        return await _environment_view(os.environ, caches=caches)
    breakers: dict[str, str] = {}
    for provider in engine.plan.known:
        state = await engine.state.breakers.state(provider.name, provider.policy.breaker_cooldown)
        breakers[provider.name] = str(state)
    cache_view: dict[str, ProviderCache] = {}
    if caches:
        cache = engine.state.cache
        store = STORE_REDIS if _is_redis(cache) else STORE_MEMORY
        counts = await _counted(cache, cache, [p.name for p in engine.plan.known])
        cache_view = _caches(engine.plan.known, store, counts)
    return EngineView(engine.disabled(), breakers, cache_view)


def _is_redis(cache: ResultCache) -> bool:
    from linkmeter.engine.state.cache import RedisCache

    return isinstance(cache, RedisCache)


def _caches(providers: Iterable[Provider | type[Provider]], store: str,
            counts: Mapping[str, int | None]) -> dict[str, ProviderCache]:
    views = {}
    for provider in providers:
        count = counts.get(provider.name)
        more = count is not None and count > ENTRIES_LIMIT
        views[provider.name] = ProviderCache(provider.policy.cache_ttl, store,
                                             ENTRIES_LIMIT if more else count, more)
    return views


async def _counted(where: object, cache: object, names: list[str]) -> dict[str, int | None]:
    """Each provider's entries in ``cache``: reused when counted recently, else counted now (concurrently)."""
    now = _clock()
    stale = [name for name in names if (seen := _counts.get((where, name))) is None or seen[0] <= now]
    if stale:
        fresh = await asyncio.gather(*(_count(cache, name) for name in stale))
        now = _clock()
        for key in [key for key, (until, _) in list(_counts.items()) if until <= now]:
            _counts.pop(key, None)  # other sources' old counts: the dict stays small
        for name, count in zip(stale, fresh, strict=True):
            _counts[(where, name)] = (now + (COUNTS_FOR if count is not None else UNKNOWN_COUNTS_FOR), count)
    return {name: seen[1] if (seen := _counts.get((where, name))) is not None else None for name in names}


async def _count(cache: object, provider: str) -> int | None:
    entries = getattr(cache, "entries", None)  # a CountingCache; another ResultCache cannot tell
    if entries is None:
        return None
    try:
        async with asyncio.timeout(COUNT_TIMEOUT):
            count = await entries(provider, limit=ENTRIES_LIMIT)
    except Exception as exc:  # counting is for display only: it never breaks the page
        log.debug("cache entries of %s not counted: %s: %s", provider, type(exc).__name__, exc)
        return None
    return count if isinstance(count, int) and count >= 0 else None


async def _environment_view(environ: Mapping[str, str], *, caches: bool) -> EngineView:
    """What the environment implies: disabled reasons, and the breakers and caches the workers share in Redis
    when LINKMETER_REDIS_URL is set (one short-lived client), else ``unknown``."""
    unknown = {cls.name: UNKNOWN for cls in PROVIDER_CLASSES}
    try:
        settings = EngineSettings.from_env(environ)
        providers = [settings.configure(cls) for cls in PROVIDER_CLASSES]
    except SettingsError as exc:
        disabled = {cls.name: f"bad settings: {exc}" for cls in PROVIDER_CLASSES}
        # The classes' own policies: the settings cannot be read.
        return EngineView(disabled, unknown, _caches(PROVIDER_CLASSES, STORE_UNKNOWN, {}) if caches else {})
    disabled = {p.name: reason for p in providers if (reason := p.disabled_reason()) is not None}
    if settings.redis_url is None:
        return EngineView(disabled, unknown, _caches(providers, STORE_UNKNOWN, {}) if caches else {})
    from linkmeter.engine.state.breakers import RedisCircuitBreakers
    from linkmeter.engine.state.cache import RedisCache
    from linkmeter.engine.state.link import RedisLink

    try:
        link = RedisLink.from_url(settings.redis_url, prefix=settings.redis_prefix, timeout=settings.redis_timeout)
    except ValueError:
        return EngineView(disabled, unknown, _caches(providers, STORE_REDIS, {}) if caches else {})
    try:
        breakers = RedisCircuitBreakers(link)
        states = {p.name: str(await breakers.state(p.name, p.policy.breaker_cooldown)) for p in providers}
        if link.down:  # when Redis failed, the states are this process's guesses
            states = unknown
        cache_view: dict[str, ProviderCache] = {}
        if caches:  # after the breakers: when Redis failed there, counting gives up at once
            where = ("redis", settings.redis_url, settings.redis_prefix)
            counts = await _counted(where, RedisCache(link, near_entries=0), [p.name for p in providers])
            cache_view = _caches(providers, STORE_REDIS, counts)
        return EngineView(disabled, states, cache_view)
    finally:
        await link.aclose()
