"""What an account used: each quota's limit, used, remaining and reset, per key, and the last 30 days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from linkmeter.web.plans.limits import PlanLimits, period_end, period_start
from linkmeter.web.plans.models import Period, QuotaCounter, UsageDay

HISTORY_DAYS = 30


@dataclass(frozen=True, slots=True)
class QuotaState:
    period: Period
    limit: int | None
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period.value, "limit": self.limit, "used": self.used, "remaining": self.remaining,
                "resets_at": iso(self.resets_at)}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def quota_states(user_id: int, plan: PlanLimits, now: datetime | None = None,
                 used: dict[Period, int] | None = None) -> list[QuotaState]:
    """Each quota of the plan now (``used``: counts already known, e.g. just reserved)."""
    now = now or timezone.now()
    known = dict(used or {})
    missing = [p for p in (Period.DAY, Period.MONTH) if p not in known]
    if missing:
        rows = QuotaCounter.objects.filter(user_id=user_id, period__in=missing,
                                           start__in=[period_start(p, now) for p in missing])
        for row in rows:
            if row.start == period_start(Period(row.period), now):
                known[Period(row.period)] = row.used
    return [QuotaState(p, plan.quota(p), known.get(p, 0), period_end(p, now)) for p in (Period.DAY, Period.MONTH)]


def usage_history(user_id: int, *, today: date, days: int = HISTORY_DAYS) -> list[dict[str, Any]]:
    """URLs and submissions per day for the last ``days`` days (today included, oldest first, zeros filled)."""
    first = today - timedelta(days=days - 1)
    totals = {row["day"]: row for row in UsageDay.objects.filter(user_id=user_id, day__gte=first, day__lte=today)
              .values("day").annotate(urls=Sum("urls"), submissions=Sum("submissions"))}
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = totals.get(day)
        out.append({"day": day.isoformat(), "urls": int(row["urls"]) if row else 0,
                    "submissions": int(row["submissions"]) if row else 0})
    return out


def usage_by_key(user_id: int, *, since: date, until: date) -> list[dict[str, Any]]:
    """URLs and submissions per key (key_id 0: no key, e.g. the UI) between two days; sums to the account's."""
    rows = (UsageDay.objects.filter(user_id=user_id, day__gte=since, day__lte=until)
            .values("key_id").annotate(urls=Sum("urls"), submissions=Sum("submissions")).order_by("key_id"))
    labels = dict(UsageDay.objects.filter(user_id=user_id).exclude(key_label="")
                  .order_by("day").values_list("key_id", "key_label"))
    return [{"key_id": row["key_id"] or None, "label": labels.get(row["key_id"], "") or
             ("no key" if not row["key_id"] else f"key {row['key_id']}"),
             "urls": int(row["urls"]), "submissions": int(row["submissions"])} for row in rows]


def account_usage(user_id: int, plan: PlanLimits, now: datetime | None = None) -> dict[str, Any]:
    """The whole picture for GET /api/v1/usage and the usage page (rate limits are added by the caller,
    which holds the limiter)."""
    now = now or timezone.now()
    quotas = quota_states(user_id, plan, now)
    today = period_start(Period.DAY, now)
    month = period_start(Period.MONTH, now)
    return {
        "plan": {"code": plan.code, "name": plan.name, "priority": plan.priority, "max_batch": plan.max_batch,
                 "max_in_flight": plan.max_in_flight, "providers": list(plan.providers) or None},
        "quotas": [q.as_dict() for q in quotas],
        "keys": {"day": usage_by_key(user_id, since=today, until=today),
                 "month": usage_by_key(user_id, since=month, until=today)},
        "history": usage_history(user_id, today=today),
    }
