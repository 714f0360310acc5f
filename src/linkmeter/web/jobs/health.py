"""Provider health as the running engine sees it: which providers are disabled (and why), breaker states."""

from __future__ import annotations

import os
from collections.abc import Mapping

from linkmeter.engine.runner import Engine
from linkmeter.engine.settings import EngineSettings, SettingsError
from linkmeter.providers.registry import PROVIDER_CLASSES

UNKNOWN = "unknown"

_engine: Engine | None = None


def register_engine(engine: Engine | None) -> None:
    """`linkmeter serve` registers the engine its runner uses (None when it stops)."""
    global _engine
    _engine = engine


def registered_engine() -> Engine | None:
    return _engine


async def engine_health() -> tuple[dict[str, str], dict[str, str]]:
    """(disabled provider -> reason, provider -> breaker state: closed, open, half_open or unknown).

    From the engine running in this process; without one (e.g. a management shell), the disabled reasons
    the environment implies, and the breakers the workers share in Redis when LINKMETER_REDIS_URL is set
    (else every breaker ``unknown``).
    """
    engine = _engine
    if engine is None:
        return _disabled_from_environment(), await _shared_breakers(os.environ)
    breakers: dict[str, str] = {}
    for provider in engine.plan.providers:
        state = await engine.state.breakers.state(provider.name, provider.policy.breaker_cooldown)
        breakers[provider.name] = str(state)
    return engine.disabled(), breakers


def _disabled_from_environment() -> dict[str, str]:
    try:
        settings = EngineSettings.from_env(os.environ)
        providers = [settings.configure(cls) for cls in PROVIDER_CLASSES]
    except SettingsError as exc:
        return {cls.name: f"bad settings: {exc}" for cls in PROVIDER_CLASSES}
    return {p.name: reason for p in providers if (reason := p.disabled_reason()) is not None}


async def _shared_breakers(environ: Mapping[str, str]) -> dict[str, str]:
    """Breaker states from the Redis state the workers share (one short-lived client), or ``unknown``."""
    unknown = {cls.name: UNKNOWN for cls in PROVIDER_CLASSES}
    try:
        settings = EngineSettings.from_env(environ)
        providers = [settings.configure(cls) for cls in PROVIDER_CLASSES]
    except SettingsError:
        return unknown
    if settings.redis_url is None:
        return unknown
    from linkmeter.engine.redis_state import RedisCircuitBreakers, RedisLink

    try:
        link = RedisLink.from_url(settings.redis_url, prefix=settings.redis_prefix, timeout=settings.redis_timeout)
    except ValueError:
        return unknown
    try:
        breakers = RedisCircuitBreakers(link)
        states = {p.name: str(await breakers.state(p.name, p.policy.breaker_cooldown)) for p in providers}
        return unknown if link.down else states  # when Redis failed, the states are this process's guesses
    finally:
        await link.aclose()
