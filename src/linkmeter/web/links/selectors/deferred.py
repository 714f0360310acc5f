"""Deferred cells as people see them: when each is likely filled (an estimate from its place in its provider's
queue and the provider's rate), and how many a batch has waiting."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web import runtime
from linkmeter.web.links.models import BatchItem, ProviderResult

QUEUE_LIMIT = 100_000  # places counted per provider; a cell further back gets the estimate of the last one
UNLIMITED_RATE_PER_ROUND = 50  # as jobs/refill.py asks again per round for a provider with no rate limit
_CLASS_RATES = {cls.name: cls.policy.rate_per_sec for cls in PROVIDER_CLASSES}


def refill_rate(provider: str) -> float:
    """Cells per second the refiller asks again for ``provider``: its rate limit as this process's engine has
    it (else its class's), or what a round takes of a provider with none."""
    installed = runtime.installed()
    engine = installed.engine if installed is not None else None
    if engine is not None:
        known = {p.name: p for p in engine.plan.known or engine.plan.providers}
        rate = known[provider].policy.rate_per_sec if provider in known else _CLASS_RATES.get(provider)
    else:
        rate = _CLASS_RATES.get(provider)
    interval = float(settings.LINKMETER["DEFER_INTERVAL_SECONDS"])
    return rate or UNLIMITED_RATE_PER_ROUND / interval


def deferred_estimates(results: Iterable[ProviderResult]) -> dict[int, datetime]:
    """Result id -> when the refiller will likely have asked again: after the cells ahead of it in its
    provider's queue (higher priority, then older), at the provider's rate, plus one round."""
    wanted: dict[str, set[int]] = {}
    for result in results:
        if result.deferred_since is not None:
            wanted.setdefault(result.provider, set()).add(result.pk)
    if not wanted:
        return {}
    now = timezone.now()
    interval = float(settings.LINKMETER["DEFER_INTERVAL_SECONDS"])
    estimates: dict[int, datetime] = {}
    for provider, ids in wanted.items():
        queue = list(ProviderResult.objects.filter(provider=provider, deferred_since__isnull=False)
                     .order_by("-deferred_priority", "id").values_list("id", flat=True)[:QUEUE_LIMIT])
        places = {pk: n for n, pk in enumerate(queue)}
        rate = refill_rate(provider)
        for pk in ids:
            ahead = places.get(pk, len(queue))
            estimates[pk] = now + timedelta(seconds=interval + ahead / rate)
    return estimates


def batch_deferred(batch_id: int) -> tuple[int, datetime | None]:
    """A batch's deferred cells and when the last of them will likely be asked again (None: none waits)."""
    results = list(ProviderResult.objects.filter(
        analysis_id__in=BatchItem.objects.filter(batch_id=batch_id).values("analysis_id"),
        deferred_since__isnull=False).only("id", "provider", "deferred_since"))
    if not results:
        return 0, None
    return len(results), max(deferred_estimates(results).values())
