"""The usage page's chart: one bar per day, scaled to the busiest; the page shows the account's quotas."""

from __future__ import annotations

import pytest
from django.test import Client

from linkmeter.web.plans.selectors.plans import plan_for
from linkmeter.web.plans.services.quota import quota_reserve
from linkmeter.web.ui.usagechart import AXIS, HEIGHT, bars
from tests.web.plans.conftest import MakeAccount


def test_bars_are_scaled_to_the_busiest_day() -> None:
    drawn = bars([{"day": "2026-12-01", "urls": 0}, {"day": "2026-12-02", "urls": 5},
                  {"day": "2026-12-03", "urls": 10}], width=300)
    assert [b.height for b in drawn] == [0, (HEIGHT - AXIS) / 2, HEIGHT - AXIS]
    assert drawn[2].y == 0 and drawn[1].x > drawn[0].x
    assert bars([]) == []


@pytest.mark.django_db(transaction=True)
def test_the_usage_page_shows_the_quotas_and_one_bar_per_day(account: MakeAccount) -> None:
    user = account(daily_urls=50)
    quota_reserve(user_id=user.pk, plan=plan_for(user), urls=7)
    client = Client()
    client.force_login(user)
    page = client.get("/usage/").content.decode()
    assert 'data-quota="day">7 / 50' in page
    assert page.count("<rect ") == 30 and 'data-urls="7"' in page


@pytest.mark.django_db(transaction=True)
def test_local_mode_is_the_unlimited_plan() -> None:
    assert "<strong>Unlimited</strong> plan" in Client().get("/usage/").content.decode()
