"""Provider budgets: how many requests each provider may get per calendar hour and day (UTC), with a reserve
that only higher priorities may spend (in memory here; shared through Redis: ``state/budgets.py``).

The rule (docs/providers.md, "Budgets"): a call of priority ``p`` may spend a budget while its use is below
``limit * (1 - reserve * (T - p) / T)`` for ``p < T`` (``T``: ``reserve_priority``), the whole limit for
``p >= T``. With the defaults (reserve 0.2, T 4) a free plan's bulk batch (priority 0) stops at 80 % of each
budget, a free single URL (2) at 90 %, every paid plan's work (4 and up) may use it all: a bulk batch cannot
spend what a paid account's next URL needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from linkmeter.engine.ports import BudgetRefusal as BudgetRefusal  # named here too: its users import it from here
from linkmeter.engine.ports import BudgetWindow as BudgetWindow
from linkmeter.engine.provider import Policy

HOUR = 3600
DAY = 86400
DEFAULT_RESERVE = 0.2  # LINKMETER_BUDGET_RESERVE
DEFAULT_RESERVE_PRIORITY = 4  # LINKMETER_BUDGET_RESERVE_PRIORITY: the seeded pro plan's bulk priority

Limits = Sequence[tuple[int, int]]  # (period in seconds, requests allowed in it)


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """The reserve: the share of each budget kept for calls of priority ``reserve_priority`` and above."""

    reserve: float = DEFAULT_RESERVE
    reserve_priority: int = DEFAULT_RESERVE_PRIORITY

    def allowance(self, limit: int, priority: int) -> int:
        """How much of ``limit`` a call of ``priority`` may use."""
        top = max(1, self.reserve_priority)
        if priority >= top:
            return limit
        held = self.reserve * (top - max(0, priority)) / top
        return int(limit * (1.0 - held))


def budget_limits(policy: Policy) -> tuple[tuple[int, int], ...]:
    """The budgets of a provider with this policy, as (period seconds, limit): each period's own setting, else
    its rate's worth of that period; none when neither is set (or it is 0)."""
    limits = []
    for explicit, period in ((policy.per_hour, HOUR), (policy.per_day, DAY)):
        limit = explicit if explicit is not None else int(policy.rate_per_sec * period) if policy.rate_per_sec else 0
        if limit > 0:
            limits.append((period, limit))
    return tuple(limits)


def window_start(now: float, period: int) -> int:
    """The start of the calendar window holding ``now`` (epoch seconds: hours and days are UTC's)."""
    return int(now // period) * period


class MemoryBudgets:
    """Budgets for one process: a counter per provider and calendar window."""

    def __init__(self, rule: BudgetRule | None = None, clock: Callable[[], float] = time.time) -> None:
        self.rule = rule or BudgetRule()
        self._clock = clock
        self._used: dict[tuple[str, int], tuple[int, int]] = {}  # (name, period) -> (window start, used)

    def _current(self, name: str, period: int, now: float) -> int:
        start, used = self._used.get((name, period), (0, 0))
        return used if start == window_start(now, period) else 0

    async def spend(self, name: str, limits: Limits, priority: int) -> BudgetRefusal | None:
        """Count one request against every budget of ``name``, or none when one is spent for ``priority``."""
        now = self._clock()
        for period, limit in limits:
            allowance = self.rule.allowance(limit, priority)
            if self._current(name, period, now) >= allowance:
                return BudgetRefusal(period, limit, allowance, window_start(now, period) + period)
        for period, _ in limits:
            self._used[(name, period)] = (window_start(now, period), self._current(name, period, now) + 1)
        return None

    async def usage(self, name: str, limits: Limits) -> list[BudgetWindow]:
        now = self._clock()
        return [BudgetWindow(period, limit, self._current(name, period, now), window_start(now, period) + period)
                for period, limit in limits]
