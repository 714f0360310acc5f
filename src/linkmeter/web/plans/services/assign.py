"""Putting an account on a plan (the admin, ``linkmeter user set-plan``, the local owner's creation)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from linkmeter.web.plans.models import AccountPlan, Plan
from linkmeter.web.plans.selectors.plans import forget_plans
from linkmeter.web.plans.services.errors import PlanRefused


def account_plan_set(*, user: AbstractBaseUser, code: str) -> AccountPlan:
    """Put ``user`` on the plan ``code``; an unknown code is a ServiceError ``unknown_plan``."""
    plan = Plan.objects.filter(code=code).first()
    if plan is None:
        known = list(Plan.objects.values_list("code", flat=True))
        raise PlanRefused(422, "unknown_plan", f"no plan {code!r}; the plans are {', '.join(known)}",
                          {"known": known})
    row, _ = AccountPlan.objects.update_or_create(user_id=user.pk, defaults={"plan": plan})
    forget_plans()
    return row
