"""Calendar periods (UTC) and what a plan allows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from linkmeter.web.plans.limits import FALLBACK_PLANS, period_end, period_start
from linkmeter.web.plans.models import Period


def test_a_day_ends_at_midnight_utc_whatever_the_callers_time_zone() -> None:
    late = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert period_start(Period.DAY, late) == date(2026, 12, 31)
    assert period_end(Period.DAY, late) == datetime(2027, 1, 1, tzinfo=UTC)
    # 20:00 in New York on Dec 31 is already Jan 1 in UTC
    new_york = datetime(2026, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert period_start(Period.DAY, new_york) == date(2027, 1, 1)


def test_a_month_runs_from_its_first_day_to_the_next_months() -> None:
    assert period_start(Period.MONTH, datetime(2028, 2, 29, 12, tzinfo=UTC)) == date(2028, 2, 1)
    assert period_end(Period.MONTH, datetime(2028, 2, 29, 12, tzinfo=UTC)) == datetime(2028, 3, 1, tzinfo=UTC)
    assert period_end(Period.MONTH, datetime(2026, 12, 3, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_the_priority_of_a_small_submission_is_above_its_plans_bulk() -> None:
    free = FALLBACK_PLANS["free"]
    assert free.analysis_priority(1) > free.analysis_priority(500) == free.priority
    assert [w.seconds for w in free.rate_windows] == [1, 60]
    assert FALLBACK_PLANS["unlimited"].rate_windows == ()
