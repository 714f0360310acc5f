"""GET /usage: the account's plan, quotas, rate limits, per-key breakdown and last 30 days (never counted)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from ninja import Router

from linkmeter.web.api.schemas import UsageOut
from linkmeter.web.plans.middleware import request_account, subject
from linkmeter.web.plans.ratelimit import limiter
from linkmeter.web.plans.selectors.plans import plan_for
from linkmeter.web.plans.selectors.usage import account_usage, quota_states

router = Router(tags=["usage"])


@router.get("", url_name="usage", response=UsageOut,
            summary="Your plan, each quota's limit/used/remaining/resets_at, rate limits, keys, last 30 days")
async def usage(request: HttpRequest) -> dict[str, Any]:
    user = await request_account(request)
    plan = getattr(request, "plan", None) or await sync_to_async(plan_for)(user)
    if user is None or user.pk is None:
        body: dict[str, Any] = {"account": None, "plan": {"code": plan.code, "name": plan.name,
                                                          "priority": plan.priority},
                                "quotas": [], "rate_limits": [], "keys": {"day": [], "month": []}, "history": []}
        return body
    pk = user.pk
    body = await sync_to_async(account_usage)(pk, plan)
    request.plan_quotas = await sync_to_async(quota_states)(pk, plan)  # type: ignore[attr-defined]
    state = await limiter().peek(subject(user), plan)
    body["account"] = {"id": pk, "username": user.get_username()}
    body["rate_limits"] = [{"name": s.window.name, "limit": s.window.limit, "window_seconds": s.window.seconds,
                            "remaining": s.remaining, "resets_in": s.reset_seconds} for s in state.windows]
    return body
