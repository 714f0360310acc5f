"""The accounts' profiles named a plan by code (``Account.plan_code``) beside AccountPlan: each code that
differs from the default and names a plan becomes the account's AccountPlan (an existing row wins, as it did
when read), before the accounts app drops the field and AccountPlan is the one source."""

from typing import Any

from django.db import migrations


def plans_from_profiles(apps: Any, schema_editor: Any) -> None:
    Account = apps.get_model("accounts", "Account")
    AccountPlan = apps.get_model("plans", "AccountPlan")
    Plan = apps.get_model("plans", "Plan")
    plans = {p.code: p for p in Plan.objects.all()}
    taken = set(AccountPlan.objects.values_list("user_id", flat=True))
    rows = [AccountPlan(user_id=user_id, plan=plans[code])
            for user_id, code in Account.objects.exclude(plan_code="free").values_list("user_id", "plan_code")
            if user_id not in taken and code in plans]
    AccountPlan.objects.bulk_create(rows)


class Migration(migrations.Migration):

    dependencies = [
        ("plans", "0002_seed_plans"),
        ("accounts", "0001_initial"),
    ]

    operations = [migrations.RunPython(plans_from_profiles, migrations.RunPython.noop)]
