"""GET /providers: every provider, what it is (group, default set, key, limits) and its health over the recent
window, with the running engine's view (disabled providers, breakers, caches, which keys are set)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Router

from linkmeter.web.api.schemas import ProvidersOut
from linkmeter.web.jobs.health import engine_view
from linkmeter.web.links.selectors.health import provider_health

router = Router(tags=["providers"])

WINDOW_MINUTES = 15


@router.get("", url_name="providers_health", response=ProvidersOut,
            summary="Per provider: group, default set or not, its key (set or not), limits, enabled, breaker, "
                    "success rate, p50/p95 latency, last error, cache")
async def providers_health(request: HttpRequest) -> dict[str, Any]:
    view = await engine_view()
    health = await sync_to_async(provider_health)(disabled=view.disabled, breakers=view.breakers,
                                                  caches=view.caches, keys_set=view.keys_set, budgets=view.budgets,
                                                  window_minutes=WINDOW_MINUTES)
    return {"window_minutes": WINDOW_MINUTES, "providers": health}  # each shaped by ProviderHealthOut
