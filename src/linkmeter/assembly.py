"""Assembles a ready Engine from the environment: providers, plan, shared clients and state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.plan import Plan
from linkmeter.engine.runner import Engine
from linkmeter.engine.settings import EngineSettings, SettingsError
from linkmeter.engine.state import EngineState
from linkmeter.providers.registry import PROVIDER_CLASSES


def build_engine(
    environ: Mapping[str, str],
    *,
    select: Iterable[str] | None = None,
    relax_rate_limits: bool = False,
    url_deadline: float | None = None,
    state: EngineState | None = None,
) -> Engine:
    """Raises SettingsError for bad settings and PlanError for an invalid plan or selection.

    Without ``state``: shared state in Redis when LINKMETER_REDIS_URL is set (closed by ``Engine.close()``),
    in memory otherwise."""
    settings = EngineSettings.from_env(environ, relax_rate_limits=relax_rate_limits)
    providers = [settings.configure(cls) for cls in PROVIDER_CLASSES]
    plan = Plan.build(providers, select=select)
    if state is None and settings.redis_url:
        from linkmeter.engine.state.redis_state import redis_state  # redis is imported only when it is used

        try:
            state = redis_state(settings.redis_url, prefix=settings.redis_prefix, timeout=settings.redis_timeout)
        except ValueError as exc:
            raise SettingsError(f"LINKMETER_REDIS_URL: {exc}") from exc
    return Engine(
        plan,
        http=HttpClient(settings.http),
        dns=DnsClient(settings.dns_servers),
        state=state,
        url_deadline=url_deadline or settings.url_deadline,
        bulk=settings.bulk,
    )
