"""Which plan an account is on: its AccountPlan, else the default plan (``free``); no account (anonymous
local mode) and superusers without a plan of their own (the local owner) are ``unlimited``. Answers are kept
per process for a few seconds, so a request costs no query and a plan changed in the admin applies soon."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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
    # The accounts app's profile names a plan by code (its local owner: unlimited) until an AccountPlan exists.
    try:
        profile_code = getattr(getattr(user, "account", None), "plan_code", None)
    except ObjectDoesNotExist:
        profile_code = None
    if isinstance(profile_code, str) and profile_code:
        return profile_code
    return UNLIMITED if getattr(user, "is_superuser", False) else DEFAULT_PLAN


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
