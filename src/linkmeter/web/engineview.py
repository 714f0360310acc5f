"""The engine's view of its providers as plain records (disabled reasons, breakers, caches, budgets): built by
``web.jobs.health``, shown by the selectors, the API and the UI, which import them from here (below both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

UNKNOWN = "unknown"

# Where a provider cache lives (``ProviderCache.store``).
STORE_REDIS = "redis"  # shared by every process using the same Redis (and prefix)
STORE_MEMORY = "memory"  # the memory of this process (the engine it runs)
STORE_UNKNOWN = "unknown"  # no engine runs here and no Redis is configured
STORE_LABELS = {STORE_REDIS: "shared (Redis)", STORE_MEMORY: "this process (memory)", STORE_UNKNOWN: UNKNOWN}


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
class ProviderBudget:
    """One of a provider's budgets (engine/budgets.py): its period (``hour`` or ``day``, calendar UTC), limit,
    what is used and left (None: cannot tell here: no engine runs and no Redis is configured, or it fails),
    when it refills, and where it is counted (a ``STORE_*``)."""

    period: str
    limit: int
    used: int | None
    remaining: int | None
    resets_at: datetime
    store: str


@dataclass(frozen=True, slots=True)
class EngineView:
    disabled: dict[str, str]  # disabled provider -> reason
    breakers: dict[str, str]  # provider -> closed, open, half_open or unknown
    caches: dict[str, ProviderCache]  # provider -> its cache (empty when not asked for)
    keys_set: dict[str, bool] = field(default_factory=dict)  # provider -> its API key is set (never the key)
    budgets: dict[str, list[ProviderBudget]] = field(default_factory=dict)  # provider -> its budgets
