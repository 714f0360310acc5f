"""Each provider's health over the recent window, from its stored results and the engine's view."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from linkmeter.engine.provider import Provider
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.engineview import STORE_UNKNOWN, ProviderBudget, ProviderCache
from linkmeter.web.links.models import ProviderResult

PROBLEM_STATUSES = ("error", "timeout", "rate_limited", "circuit_open")
DOCS = "docs/providers.md"


def docs_reference(cls: type[Provider]) -> str:
    """The provider's section of docs/providers.md (GitHub's anchor of its heading)."""
    anchor = f"{cls.name}-indicator" if cls.group == "indicator" else cls.name
    return f"{DOCS}#{anchor}"


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """One provider's row of the providers page; the API serves it as ``ProviderHealthOut``."""

    name: str
    group: str  # page, domain, threat, authority, social, archive or indicator
    in_default_set: bool  # runs when a submission names no provider
    key: str  # required, optional or none
    key_variable: str | None  # the setting holding its key (None: it takes none)
    key_set: bool  # that setting is set (the key itself is never shown)
    key_url: str | None  # where to get a key
    published_limits: str
    docs: str  # its section of docs/providers.md
    enabled: bool
    disabled_reason: str | None
    breaker: str
    calls: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    statuses: dict[str, int]
    last_error: str | None
    last_error_at: datetime | None
    cache: ProviderCache  # the engine's view of the provider's cache (policy, where, entries)
    hit_ratio: float | None  # cached / (ok + cached) over the window; None when neither happened
    budgets: list[ProviderBudget] = field(default_factory=list)  # per hour and day: limit, used, left, refill
    deferred: int = 0  # its cells waiting to be filled in the background


def provider_health(*, disabled: dict[str, str], breakers: dict[str, str],
                    caches: Mapping[str, ProviderCache] | None = None, keys_set: Mapping[str, bool] | None = None,
                    budgets: Mapping[str, list[ProviderBudget]] | None = None,
                    window_minutes: int = 15, sample: int = 2000) -> list[ProviderHealth]:
    """Per provider over the recent window: calls by status, success rate (of calls that ran), cache hit
    ratio, latency percentiles of calls that reached upstream, and the last error; with the engine's view
    (``linkmeter.web.jobs.health.engine_view``) of what is disabled, the breakers, the caches and which keys
    are set; and what the provider is: its group, whether it is in the default set, its key and limits."""
    caches = caches or {}
    keys_set = keys_set or {}
    budgets = budgets or {}
    deferred = dict(ProviderResult.objects.filter(deferred_since__isnull=False).values("provider")
                    .annotate(n=Count("id")).order_by().values_list("provider", "n"))
    since = timezone.now() - timedelta(minutes=window_minutes)
    health = []
    for cls in PROVIDER_CLASSES:
        name = cls.name
        recent = list(ProviderResult.objects.filter(provider=name, created_at__gte=since)
                      .order_by("-id").values("status", "latency_ms", "message", "created_at")[:sample])
        statuses = Counter(row["status"] for row in recent)
        ran = [row for row in recent if row["status"] not in ("skipped", "disabled")]
        ok = sum(1 for row in ran if row["status"] in ("ok", "cached"))
        latencies = sorted(row["latency_ms"] for row in ran if row["status"] == "ok")
        problem = next((row for row in recent if row["status"] in PROBLEM_STATUSES), None)
        succeeded = statuses["ok"] + statuses["cached"]  # results from the cache or from upstream
        takes = cls.takes_key()
        health.append(ProviderHealth(
            name=name,
            group=cls.group,
            in_default_set=cls.in_default_set,
            key=takes,
            key_variable=cls.key_variable() if takes != "none" else None,
            key_set=takes != "none" and keys_set.get(name, False),
            key_url=cls.key_url or None,
            published_limits=cls.published_limits,
            docs=docs_reference(cls),
            enabled=name not in disabled,
            disabled_reason=disabled.get(name),
            breaker=breakers.get(name, "unknown"),
            calls=len(recent),
            success_rate=ok / len(ran) if ran else None,
            p50_ms=round(statistics.median(latencies), 1) if latencies else None,
            p95_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 1) if latencies else None,
            statuses=dict(statuses),
            last_error=f"{problem['status']}: {problem['message']}" if problem else None,
            last_error_at=problem["created_at"] if problem else None,
            cache=caches.get(name) or ProviderCache(cls.policy.cache_ttl, STORE_UNKNOWN, None),
            hit_ratio=statuses["cached"] / succeeded if succeeded else None,
            budgets=list(budgets.get(name, [])),
            deferred=deferred.get(name, 0),
        ))
    return health
