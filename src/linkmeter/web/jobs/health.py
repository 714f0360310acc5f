"""Provider health as the running engine sees it: which providers are disabled (and why), breaker states, and
the provider caches (policy, where they live, how many entries they hold). The records are in
``web.engineview``; the engine, or the settings, providers and shared state without one, are built by
``linkmeter.assembly``."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from linkmeter.assembly import build_providers, build_settings, build_state
from linkmeter.engine.budgets import BudgetWindow, budget_limits, window_start
from linkmeter.engine.ports import ProviderBudgets
from linkmeter.engine.provider import Provider
from linkmeter.engine.settings import SettingsError
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web import runtime
from linkmeter.web.engineview import (
    STORE_LABELS,
    STORE_MEMORY,
    STORE_REDIS,
    STORE_UNKNOWN,
    UNKNOWN,
    EngineView,
    ProviderBudget,
    ProviderCache,
)
from linkmeter.web.runtime import CacheCounts

log = logging.getLogger(__name__)

__all__ = ["STORE_LABELS", "STORE_MEMORY", "STORE_REDIS", "STORE_UNKNOWN", "UNKNOWN", "EngineView", "ProviderCache",
           "disabled_providers", "engine_health", "engine_view", "forget_counts"]

ENTRIES_LIMIT = 100_000  # entries counted per provider; past it, "more than ENTRIES_LIMIT"
COUNT_TIMEOUT = 2.5  # seconds, over a cache's own bound (RedisCache counts within 2 s): never hangs a page
COUNTS_FOR = 30.0  # seconds a provider's count is reused (the page refreshes every 3 s: Redis is not SCANned each time)
UNKNOWN_COUNTS_FOR = 10.0  # seconds an "unknown" count is reused before trying again


def forget_counts() -> None:
    """Drop the cache entry counts this process reuses (the next view counts again)."""
    runtime.current().counts.forget()


async def engine_health() -> tuple[dict[str, str], dict[str, str]]:
    """(disabled provider -> reason, provider -> breaker state: closed, open, half_open or unknown).

    From the engine running in this process (the runtime's); without one, the disabled reasons the
    environment implies, and the breakers the workers share in Redis when LINKMETER_REDIS_URL is set (else
    every breaker ``unknown``).
    """
    view = await engine_view(caches=False)
    return view.disabled, view.breakers


async def engine_view(*, caches: bool = True) -> EngineView:
    """``engine_health()`` plus, with ``caches``, every provider's cache, from the same source: the engine's
    own cache (memory, or Redis when it runs on shared state), else the cache the workers share in Redis
    (LINKMETER_REDIS_URL), else unknown. Entry counts are reused for ``COUNTS_FOR`` seconds; a cache that
    cannot answer (Redis down or slow) gives None, within ``COUNT_TIMEOUT`` at most."""
    current = runtime.current()
    engine = current.engine
    if engine is None:
        return await _environment_view(os.environ, current.counts, caches=caches)
    breakers: dict[str, str] = {}
    for provider in engine.plan.known:
        state = await engine.state.breakers.state(provider.name, provider.policy.breaker_cooldown)
        breakers[provider.name] = str(state)
    cache_view: dict[str, ProviderCache] = {}
    if caches:
        cache = engine.state.cache
        store = STORE_REDIS if engine.state.shared else STORE_MEMORY
        counts = await _counted(current.counts, cache, cache, [p.name for p in engine.plan.known])
        cache_view = _caches(engine.plan.known, store, counts)
    budgets = await _budgets(engine.plan.known, engine.state.budgets,
                             STORE_REDIS if engine.state.shared else STORE_MEMORY)
    return EngineView(engine.disabled(), breakers, cache_view, _keys_set(engine.plan.known), budgets)


async def _budgets(providers: Iterable[Provider], store: ProviderBudgets | None,
                   where: str) -> dict[str, list[ProviderBudget]]:
    """Each provider's budgets, as ``store`` counts them (None: only the limits are known here)."""
    views: dict[str, list[ProviderBudget]] = {}
    now = time.time()
    for provider in providers:
        limits = budget_limits(provider.policy)
        if not limits:
            continue
        windows: list[BudgetWindow] = []
        if store is not None:
            try:
                async with asyncio.timeout(COUNT_TIMEOUT):
                    windows = await store.usage(provider.name, limits)
            except Exception as exc:  # for display only: never breaks the page
                log.debug("budgets of %s not read: %s: %s", provider.name, type(exc).__name__, exc)
        if windows:
            views[provider.name] = [
                ProviderBudget(w.name, w.limit, w.used, w.remaining, datetime.fromtimestamp(w.resets_at, UTC), where)
                for w in windows]
        else:
            views[provider.name] = [
                ProviderBudget(BudgetWindow(period, limit, 0, 0).name, limit, None, None,
                               datetime.fromtimestamp(window_start(now, period) + period, UTC), STORE_UNKNOWN)
                for period, limit in limits]
    return views


def _keys_set(providers: Iterable[Provider]) -> dict[str, bool]:
    return {provider.name: bool(provider.config.api_key) for provider in providers}


def disabled_providers() -> dict[str, str]:
    """Disabled provider -> reason, as the engine of this process sees it, else as the environment implies;
    cheap (no Redis), for pages that only need this (the submit form)."""
    engine = runtime.current().engine
    if engine is not None:
        return engine.disabled()
    try:
        providers = build_providers(build_settings(os.environ))
    except SettingsError as exc:
        return {cls.name: f"bad settings: {exc}" for cls in PROVIDER_CLASSES}
    return {p.name: reason for p in providers if (reason := p.disabled_reason()) is not None}


def _caches(providers: Iterable[Provider | type[Provider]], store: str,
            counts: Mapping[str, int | None]) -> dict[str, ProviderCache]:
    views = {}
    for provider in providers:
        count = counts.get(provider.name)
        more = count is not None and count > ENTRIES_LIMIT
        views[provider.name] = ProviderCache(provider.policy.cache_ttl, store,
                                             ENTRIES_LIMIT if more else count, more)
    return views


async def _counted(memo: CacheCounts, where: object, cache: object, names: list[str]) -> dict[str, int | None]:
    """Each provider's entries in ``cache``: reused when counted recently, else counted now (concurrently)."""
    seen_counts = memo.entries
    now = memo.clock()
    stale = [name for name in names if (seen := seen_counts.get((where, name))) is None or seen[0] <= now]
    if stale:
        fresh = await asyncio.gather(*(_count(cache, name) for name in stale))
        now = memo.clock()
        for key in [key for key, (until, _) in list(seen_counts.items()) if until <= now]:
            seen_counts.pop(key, None)  # other sources' old counts: the dict stays small
        for name, count in zip(stale, fresh, strict=True):
            seen_counts[(where, name)] = (now + (COUNTS_FOR if count is not None else UNKNOWN_COUNTS_FOR), count)
    return {name: seen[1] if (seen := seen_counts.get((where, name))) is not None else None for name in names}


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


async def _environment_view(environ: Mapping[str, str], memo: CacheCounts, *, caches: bool) -> EngineView:
    """What the environment implies: disabled reasons, and the breakers and caches the workers share in Redis
    when LINKMETER_REDIS_URL is set (the state ``assembly`` builds for it, closed at once), else ``unknown``."""
    unknown = {cls.name: UNKNOWN for cls in PROVIDER_CLASSES}
    try:
        settings = build_settings(environ)
        providers = build_providers(settings)
    except SettingsError as exc:
        disabled = {cls.name: f"bad settings: {exc}" for cls in PROVIDER_CLASSES}
        keys = {cls.name: bool(environ.get(cls.key_variable())) for cls in PROVIDER_CLASSES}
        # The classes' own policies: the settings cannot be read.
        return EngineView(disabled, unknown, _caches(PROVIDER_CLASSES, STORE_UNKNOWN, {}) if caches else {}, keys)
    disabled = {p.name: reason for p in providers if (reason := p.disabled_reason()) is not None}
    keys = _keys_set(providers)
    if settings.redis_url is None:
        return EngineView(disabled, unknown, _caches(providers, STORE_UNKNOWN, {}) if caches else {}, keys,
                          await _budgets(providers, None, STORE_UNKNOWN))
    try:
        state = build_state(settings)
    except SettingsError:
        state = None
    if state is None:
        return EngineView(disabled, unknown, _caches(providers, STORE_REDIS, {}) if caches else {}, keys,
                          await _budgets(providers, None, STORE_UNKNOWN))
    try:
        states = {p.name: str(await state.breakers.state(p.name, p.policy.breaker_cooldown)) for p in providers}
        if not state.reachable():  # when Redis failed, the states are this process's guesses
            states = unknown
        cache_view: dict[str, ProviderCache] = {}
        if caches:  # after the breakers: when Redis failed there, counting gives up at once
            where = ("redis", settings.redis_url, settings.redis_prefix)
            counts = await _counted(memo, where, state.cache, [p.name for p in providers])
            cache_view = _caches(providers, STORE_REDIS, counts)
        budgets = await _budgets(providers, state.budgets if state.reachable() else None, STORE_REDIS)
        return EngineView(disabled, states, cache_view, keys, budgets)
    finally:
        await state.aclose()
