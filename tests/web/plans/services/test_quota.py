"""Quotas: a whole submission or nothing, refused work free, the calendar reset at 00:00 UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import transaction

from linkmeter.web.plans.limits import PlanLimits
from linkmeter.web.plans.models import Period, QuotaCounter, UsageDay
from linkmeter.web.plans.selectors.plans import plan_for
from linkmeter.web.plans.services.errors import PlanRefused
from linkmeter.web.plans.services.quota import quota_reserve
from tests.web.plans.conftest import MakeAccount

pytestmark = pytest.mark.django_db(transaction=True)

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def used(user_id: int) -> dict[tuple[str, str], int]:
    return {(row.period, row.start.isoformat()): row.used for row in QuotaCounter.objects.filter(user_id=user_id)}


def test_a_submission_is_reserved_whole_or_not_at_all(account: MakeAccount) -> None:
    user = account(daily_urls=10, monthly_urls=100)
    plan = plan_for(user)
    assert quota_reserve(user_id=user.pk, plan=plan, urls=7, now=NOON) == {Period.DAY: 7, Period.MONTH: 7}
    with pytest.raises(PlanRefused) as refused:
        quota_reserve(user_id=user.pk, plan=plan, urls=4, now=NOON)  # 3 left: none of the 4 is taken
    assert (refused.value.status, refused.value.code) == (429, "quota_exhausted")
    assert refused.value.details == {"quota": "day", "limit": 10, "used": 7, "remaining": 3, "requested": 4,
                                     "resets_at": "2026-12-04T00:00:00Z", "plan": plan.code}
    assert refused.value.retry_after == 12 * 3600
    assert used(user.pk) == {("day", "2026-12-03"): 7, ("month", "2026-12-01"): 7}
    assert quota_reserve(user_id=user.pk, plan=plan, urls=3, now=NOON)[Period.DAY] == 10


def test_the_month_refusing_gives_the_days_count_back(account: MakeAccount) -> None:
    user = account(daily_urls=100, monthly_urls=5)
    plan = plan_for(user)
    with pytest.raises(PlanRefused) as refused:
        quota_reserve(user_id=user.pk, plan=plan, urls=6, now=NOON)
    assert refused.value.details["quota"] == "month"
    assert refused.value.details["resets_at"] == "2027-01-01T00:00:00Z"
    assert sum(used(user.pk).values()) == 0
    assert not UsageDay.objects.exists()


def test_a_rolled_back_submission_consumes_nothing(account: MakeAccount) -> None:
    user = account(daily_urls=10)
    with pytest.raises(RuntimeError), transaction.atomic():
        quota_reserve(user_id=user.pk, plan=plan_for(user), urls=5, now=NOON)
        raise RuntimeError("the submission failed after the reservation")
    assert sum(used(user.pk).values()) == 0


def test_the_daily_quota_resets_at_midnight_utc_and_the_month_keeps_counting(account: MakeAccount) -> None:
    user = account(daily_urls=10, monthly_urls=100)
    plan = plan_for(user)
    quota_reserve(user_id=user.pk, plan=plan, urls=10, now=datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC))
    with pytest.raises(PlanRefused):
        quota_reserve(user_id=user.pk, plan=plan, urls=1, now=datetime(2026, 12, 3, 23, 59, 59, 999000, tzinfo=UTC))
    after = quota_reserve(user_id=user.pk, plan=plan, urls=10, now=datetime(2026, 12, 4, 0, 0, tzinfo=UTC))
    assert after == {Period.DAY: 10, Period.MONTH: 20}


def test_usage_is_kept_per_key_and_day(account: MakeAccount) -> None:
    user = account()
    plan: PlanLimits = plan_for(user)  # no limits: still counted
    quota_reserve(user_id=user.pk, plan=plan, urls=3, key_id=7, key_label="ci", now=NOON)
    quota_reserve(user_id=user.pk, plan=plan, urls=2, key_id=7, key_label="ci", now=NOON)
    quota_reserve(user_id=user.pk, plan=plan, urls=4, now=NOON)
    rows = {(r.key_id, r.key_label): (r.urls, r.submissions) for r in UsageDay.objects.filter(user=user)}
    assert rows == {(7, "ci"): (5, 2), (0, ""): (4, 1)}
