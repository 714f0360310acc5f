"""An account's plan is its AccountPlan (the plans app) alone: the profile's ``plan_code`` goes, once the
plans app has copied it (plans 0003)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("plans", "0003_account_plans_from_profiles"),
    ]

    operations = [migrations.RemoveField(model_name="account", name="plan_code")]
