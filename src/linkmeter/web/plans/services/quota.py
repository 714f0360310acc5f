"""URL quotas: reserved for a whole submission at once, or not at all, in the submission's own transaction
(a refused or failed submission consumes nothing). One conditional UPDATE per period (``used + n <= limit``):
atomic on SQLite (one writer at a time) and on PostgreSQL (the row lock makes a concurrent reservation wait
and re-check the condition), so processes racing for the last URLs never overspend."""

from __future__ import annotations

import math
from datetime import date, datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from linkmeter.web.plans.limits import PlanLimits, period_end, period_start
from linkmeter.web.plans.models import Period, QuotaCounter, UsageDay
from linkmeter.web.plans.services.errors import PlanRefused

PERIODS = (Period.DAY, Period.MONTH)


def quota_reserve(*, user_id: int, plan: PlanLimits, urls: int, key_id: int = 0, key_label: str = "",
                  now: datetime | None = None) -> dict[Period, int]:
    """Count ``urls`` against the account's daily and monthly quotas and its history, or raise PlanRefused
    (429 ``quota_exhausted``, with ``resets_at``) and count nothing. Call inside the submission's transaction.
    Answers each period's count after the reservation."""
    now = now or timezone.now()
    used: dict[Period, int] = {}
    if urls <= 0:
        return used
    with transaction.atomic():  # a savepoint: the day's count is given back when the month refuses
        for period in PERIODS:
            start = period_start(period, now)
            QuotaCounter.objects.bulk_create([QuotaCounter(user_id=user_id, period=period, start=start)],
                                             ignore_conflicts=True)
            counter = QuotaCounter.objects.filter(user_id=user_id, period=period, start=start)
            limit = plan.quota(period)
            if limit is not None:
                counter = counter.filter(used__lte=limit - urls)
            if counter.update(used=F("used") + urls) == 0:
                raise _exhausted(user_id, plan, period, start, urls, now)
            used[period] = QuotaCounter.objects.filter(user_id=user_id, period=period, start=start).values_list(
                "used", flat=True).get()
        day = period_start(Period.DAY, now)
        UsageDay.objects.bulk_create([UsageDay(user_id=user_id, key_id=key_id, day=day, key_label=key_label[:100])],
                                     ignore_conflicts=True)
        UsageDay.objects.filter(user_id=user_id, key_id=key_id, day=day).update(
            urls=F("urls") + urls, submissions=F("submissions") + 1)
    return used


def _exhausted(user_id: int, plan: PlanLimits, period: Period, start: date, urls: int,
               now: datetime) -> PlanRefused:
    used = QuotaCounter.objects.filter(user_id=user_id, period=period, start=start).values_list(
        "used", flat=True).first() or 0
    limit = plan.quota(period) or 0
    resets = period_end(period, now)
    remaining = max(0, limit - used)
    return PlanRefused(
        429, "quota_exhausted",
        f"{urls} URLs would exceed the plan's {'daily' if period == Period.DAY else 'monthly'} quota "
        f"({remaining} of {limit} left until {resets.isoformat()})",
        {"quota": period.value, "limit": limit, "used": used, "remaining": remaining, "requested": urls,
         "resets_at": resets.isoformat().replace("+00:00", "Z"), "plan": plan.code},
        retry_after=max(1, math.ceil((resets - now).total_seconds())))
