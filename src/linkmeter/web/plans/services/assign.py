"""Putting an account on a plan (the admin, ``linkmeter user create --plan`` and ``set-plan``): its AccountPlan
row, the one source of an account's plan."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction

from linkmeter.web.accounts import services as accounts
from linkmeter.web.plans.models import AccountPlan, Plan
from linkmeter.web.plans.selectors.plans import forget_plans
from linkmeter.web.plans.services.errors import PlanRefused


def _plan(code: str) -> Plan:
    plan = Plan.objects.filter(code=code.strip()).first()
    if plan is None:
        known = list(Plan.objects.values_list("code", flat=True))
        raise PlanRefused(422, "unknown_plan", f"no plan {code!r}; the plans are {', '.join(known)}",
                          {"known": known})
    return plan


def account_plan_set(*, user: AbstractBaseUser, code: str) -> AccountPlan:
    """Put ``user`` on the plan ``code``; an unknown code is a ServiceError ``unknown_plan``."""
    row, _ = AccountPlan.objects.update_or_create(user_id=user.pk, defaults={"plan": _plan(code)})
    forget_plans()
    return row


def account_create(*, username: str, password: str | None, code: str, email: str = "",
                   admin: bool = False) -> User:
    """A new account on the plan ``code``: an unknown plan creates no user."""
    plan = _plan(code)
    with transaction.atomic():
        user = accounts.user_create(username=username, password=password, email=email, admin=admin)
        AccountPlan.objects.create(user=user, plan=plan)
    forget_plans()
    return user
