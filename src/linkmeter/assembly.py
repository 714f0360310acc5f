"""Assembles what runs the providers from the environment: settings, providers, shared state, a ready Engine.

The one place that builds them: the engine's users (the CLI, `serve`, the workers, the demo, the bench) call
``build_engine``; provider health without an engine (``web.jobs.health``) calls the parts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from linkmeter.emulator.client import ALLOW, EmulatorInfo, emulator_variables, provider_urls
from linkmeter.engine.budgets import MemoryBudgets
from linkmeter.engine.cache import MemoryCache
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.plan import Plan
from linkmeter.engine.provider import Provider
from linkmeter.engine.runner import Engine
from linkmeter.engine.settings import EngineSettings, SettingsError
from linkmeter.engine.state import EngineState
from linkmeter.providers.registry import PROVIDER_CLASSES


def build_settings(environ: Mapping[str, str], *, relax_rate_limits: bool = False,
                   emulator: EmulatorInfo | None = None) -> EngineSettings:
    """The engine's settings from ``environ``; with ``emulator``, every provider and the page fetcher point at
    it (its ports, DNS server and CA taken as they are, not through LINKMETER_* strings). Raises
    SettingsError naming the first bad variable."""
    if emulator is None:
        return EngineSettings.from_env(environ, relax_rate_limits=relax_rate_limits)
    # What the emulator decides is not read from the environment (a stale value there is not an error).
    replaced = emulator_variables(emulator)
    kept = {name: value for name, value in environ.items() if name not in replaced}
    settings = EngineSettings.from_env({**kept, **provider_urls(emulator)}, relax_rate_limits=relax_rate_limits)
    servers = [emulator.dns] if emulator.dns is not None else settings.dns_servers
    http = dataclasses.replace(settings.http, allow=list(ALLOW), dns_servers=servers,
                               port_map=emulator.port_map, ca_pem=emulator.ca_pem)
    return dataclasses.replace(settings, http=http, dns_servers=servers)


def build_providers(settings: EngineSettings) -> list[Provider]:
    """Every registered provider, configured by ``settings``."""
    return [settings.configure(cls) for cls in PROVIDER_CLASSES]


def build_state(settings: EngineSettings) -> EngineState | None:
    """The state the settings ask to share (Redis at LINKMETER_REDIS_URL, closed by ``EngineState.aclose()``);
    None when they ask for none (the engine keeps its own in memory). Raises SettingsError."""
    if not settings.redis_url:
        return None
    from linkmeter.engine.state.redis_state import redis_state  # redis is imported only when it is used

    try:
        return redis_state(settings.redis_url, prefix=settings.redis_prefix, timeout=settings.redis_timeout,
                           near_bytes=settings.cache_memory, budget_rule=settings.budget_rule)
    except ValueError as exc:
        raise SettingsError(f"LINKMETER_REDIS_URL: {exc}") from exc


def build_engine(
    environ: Mapping[str, str],
    *,
    select: Iterable[str] | None = None,
    relax_rate_limits: bool = False,
    url_deadline: float | None = None,
    state: EngineState | None = None,
    emulator: EmulatorInfo | None = None,
) -> Engine:
    """Raises SettingsError for bad settings and PlanError for an invalid plan or selection.

    Without ``state``: shared state in Redis when LINKMETER_REDIS_URL is set (closed by ``Engine.close()``),
    in memory otherwise. ``emulator``: see ``build_settings``."""
    settings = build_settings(environ, relax_rate_limits=relax_rate_limits, emulator=emulator)
    plan = Plan.build(build_providers(settings), select=select)
    if state is None:
        state = build_state(settings) or EngineState(cache=MemoryCache(settings.cache_memory),
                                                     budgets=MemoryBudgets(settings.budget_rule))
    return Engine(
        plan,
        http=HttpClient(settings.http),
        dns=DnsClient(settings.dns_servers),
        state=state,
        url_deadline=url_deadline or settings.url_deadline,
        bulk=settings.bulk,
    )
