"""A plan as the request path sees it: an immutable snapshot (no model instance crosses threads), and the
calendar periods (UTC) its quotas count in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from linkmeter.web.plans.models import Period, Plan

SMALL_SUBMISSION = 10  # up to this many URLs: the small-submission priority bonus
SMALL_BONUS = 2


@dataclass(frozen=True, slots=True)
class RateWindow:
    name: str  # the policy name in the RateLimit headers
    limit: int  # requests
    seconds: int  # window


@dataclass(frozen=True, slots=True)
class PlanLimits:
    code: str
    name: str
    priority: int
    rate_per_second: int | None
    rate_per_minute: int | None
    daily_urls: int | None
    monthly_urls: int | None
    max_batch: int | None
    max_in_flight: int | None
    providers: tuple[str, ...]  # () = every provider

    @classmethod
    def of(cls, plan: Plan) -> PlanLimits:
        return cls(plan.code, plan.name, plan.priority, plan.rate_per_second, plan.rate_per_minute,
                   plan.daily_urls, plan.monthly_urls, plan.max_batch, plan.max_in_flight,
                   tuple(plan.providers or ()))

    @property
    def rate_windows(self) -> tuple[RateWindow, ...]:
        windows = [RateWindow("second", self.rate_per_second, 1) if self.rate_per_second is not None else None,
                   RateWindow("minute", self.rate_per_minute, 60) if self.rate_per_minute is not None else None]
        return tuple(w for w in windows if w is not None)

    def quota(self, period: Period) -> int | None:
        return self.daily_urls if period == Period.DAY else self.monthly_urls

    def allows_provider(self, name: str) -> bool:
        return not self.providers or name in self.providers

    def analysis_priority(self, urls: int) -> int:
        """The plan's priority, plus a bonus for a small submission (a single URL is not stuck behind its own
        plan's bulk batches)."""
        return self.priority + (SMALL_BONUS if urls <= SMALL_SUBMISSION else 0)


def period_start(period: Period, now: datetime) -> date:
    day = now.astimezone(UTC).date()
    return day if period == Period.DAY else day.replace(day=1)


def period_end(period: Period, now: datetime) -> datetime:
    """When the period containing ``now`` ends: the next 00:00 UTC (day) or the next month's first (month)."""
    start = period_start(period, now)
    if period == Period.DAY:
        nxt = start + timedelta(days=1)
    else:
        nxt = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC)


# Used when the plan's row is missing (a test database flushed after its migrations seeded the plans).
FALLBACK_PLANS = {
    "unlimited": PlanLimits("unlimited", "Unlimited", 8, None, None, None, None, None, None, ()),
    "free": PlanLimits("free", "Free", 0, 10, 120, 1000, 10000, 100, 200, ()),
}
