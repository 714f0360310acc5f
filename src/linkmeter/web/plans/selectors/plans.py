"""Which plan an account is on: its AccountPlan (the one source, which the CLI, the admin, the usage page and
the API all read and write), else the default plan (``free``); no account (anonymous local mode), the local
owner and superusers without a plan of their own are ``unlimited``. Answers are kept per process for a few
seconds, so a request costs no query and a plan changed in the admin applies soon."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ObjectDoesNotExist

from linkmeter.web.plans.limits import FALLBACK_PLANS, PlanLimits
from linkmeter.web.plans.models import DEFAULT_PLAN, UNLIMITED, AccountPlan, Plan

CACHE_SECONDS = 5.0

_lock = threading.Lock()
_cache: dict[int | None, tuple[float, PlanLimits]] = {}
clock: Callable[[], float] = time.monotonic


def plan_code_for(user: AbstractBaseUser | AnonymousUser | None) -> str:
    if user is None or not user.is_authenticated or user.pk is None:
        return UNLIMITED
    row = AccountPlan.objects.filter(user_id=user.pk).values_list("plan__code", flat=True).first()
    if row is not None:
        return row
    try:
        local_owner = bool(getattr(getattr(user, "account", None), "is_local_owner", False))
    except ObjectDoesNotExist:
        local_owner = False
    return default_plan_code(superuser=bool(getattr(user, "is_superuser", False)), local_owner=local_owner)


def default_plan_code(*, superuser: bool, local_owner: bool) -> str:
    """The plan of an account with no AccountPlan row."""
    return UNLIMITED if superuser or local_owner else DEFAULT_PLAN


def users_with_plans(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``accounts.selectors.users_list()`` rows with each account's ``plan`` code (one query for them all)."""
    rows = list(rows)
    chosen = dict(AccountPlan.objects.filter(user_id__in=[r["id"] for r in rows]).values_list("user_id",
                                                                                               "plan__code"))
    return [{**r, "plan": chosen.get(r["id"]) or default_plan_code(superuser=r["admin"], local_owner=r["local_owner"])}
            for r in rows]


def cached_plan(user: AbstractBaseUser | AnonymousUser | None) -> PlanLimits | None:
    """The account's plan if this process still has it, else None; no query (safe on the event loop)."""
    key = user.pk if user is not None and user.is_authenticated else None
    with _lock:
        hit = _cache.get(key)
    return hit[1] if hit is not None and hit[0] > clock() else None


def plan_for(user: AbstractBaseUser | AnonymousUser | None) -> PlanLimits:
    """The account's plan (cached for CACHE_SECONDS in this process)."""
    key = user.pk if user is not None and user.is_authenticated else None
    now = clock()
    hit = cached_plan(user)
    if hit is not None:
        return hit
    code = plan_code_for(user)
    plan = Plan.objects.filter(code=code).first()
    limits = PlanLimits.of(plan) if plan is not None else FALLBACK_PLANS.get(code, FALLBACK_PLANS[DEFAULT_PLAN])
    with _lock:
        _cache[key] = (now + CACHE_SECONDS, limits)
    return limits


def forget_plans() -> None:
    """Drop the cached plans (after a change, and between tests)."""
    with _lock:
        _cache.clear()
