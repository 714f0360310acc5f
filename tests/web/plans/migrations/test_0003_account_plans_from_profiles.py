"""The migration to one source of an account's plan: a profile's ``plan_code`` becomes its AccountPlan (an
existing row wins; an unknown code or the default leaves none), then the field is gone."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.web.plans.conftest import seed_plans

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("accounts", "0001_initial"), ("plans", "0002_seed_plans")]


def test_profiles_plan_codes_become_account_plans() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    seed_plans_old(old)
    user = old.get_model("auth", "User")
    account, account_plan, plan = (old.get_model("accounts", "Account"), old.get_model("plans", "AccountPlan"),
                                   old.get_model("plans", "Plan"))
    made = {name: user.objects.create(username=name) for name in ("pro", "kept", "gold", "plain")}
    for name, code in (("pro", "pro"), ("kept", "pro"), ("gold", "gold"), ("plain", "free")):
        account.objects.create(user=made[name], plan_code=code)
    account_plan.objects.create(user=made["kept"], plan=plan.objects.get(code="unlimited"))

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    new = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps
    rows = dict(new.get_model("plans", "AccountPlan").objects.values_list("user__username", "plan__code"))
    assert rows == {"pro": "pro", "kept": "unlimited"}
    fields = {f.name for f in new.get_model("accounts", "Account")._meta.get_fields()}
    assert "plan_code" not in fields and "is_local_owner" in fields
    seed_plans()


def seed_plans_old(apps: Any) -> None:
    """A transactional test's flush removed the seeded plans: put them back in the old state's models."""
    plan = apps.get_model("plans", "Plan")
    for values in importlib.import_module("linkmeter.web.plans.migrations.0002_seed_plans").PLANS:
        plan.objects.update_or_create(code=values["code"], defaults=values)
