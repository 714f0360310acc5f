"""Accounts on plans of a test's own, with fresh plan caches and rate-limit windows."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from linkmeter.web.plans.models import AccountPlan, Plan
from linkmeter.web.plans.ratelimit import forget_limiters
from linkmeter.web.plans.selectors.plans import forget_plans

MakeAccount = Callable[..., User]


@pytest.fixture(autouse=True)
def fresh_plans() -> Iterator[None]:
    forget_plans()
    forget_limiters()
    yield
    forget_plans()
    forget_limiters()


def seed_plans() -> None:
    """The plans the data migration seeds (a transactional test's flush removed them)."""
    seeds = importlib.import_module("linkmeter.web.plans.migrations.0002_seed_plans").PLANS
    for values in seeds:
        Plan.objects.update_or_create(code=values["code"], defaults=values)


def make_plan(code: str, **limits: Any) -> Plan:
    values: dict[str, Any] = {"name": code.title(), "priority": 0, "rate_per_second": None, "rate_per_minute": None,
                              "daily_urls": None, "monthly_urls": None, "max_batch": None, "max_in_flight": None,
                              "providers": []}
    values.update(limits)
    plan, _ = Plan.objects.update_or_create(code=code, defaults=values)
    return plan


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> MakeAccount:
    """``account(username, plan_code=None, **plan_limits)``: a user on a plan of the test's own (or on
    ``plan_code`` as it is); requests need a login (LINKMETER_AUTH=required), as on a public address."""
    monkeypatch.setenv("LINKMETER_AUTH", "required")

    def make(username: str = "ada", plan_code: str | None = None, **limits: Any) -> User:
        user = User.objects.create_user(username, password="pw-not-used")
        if plan_code:
            seed_plans()
        plan = Plan.objects.get(code=plan_code) if plan_code else make_plan(f"plan-{username}", **limits)
        AccountPlan.objects.create(user=user, plan=plan)
        return user
    return make
