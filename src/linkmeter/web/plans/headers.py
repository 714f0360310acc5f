"""The one module that writes the rate-limit headers: ``RateLimit-Policy`` and ``RateLimit`` as in the IETF
httpapi draft "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-09), serialised as
structured fields (RFC 9651) by ``http_sf``. A later draft changes only this module.

    RateLimit-Policy: "second";q=20;w=1, "minute";q=600;w=60, "urls-day";q=100000;qu="urls";w=86400
    RateLimit: "second";r=19;t=1, "minute";r=599;t=60, "urls-day";r=99990;t=51234

The request windows count API requests (the draft's default quota unit); the URL quotas count submitted
URLs per calendar day and month (UTC), so their quota unit says ``urls``. ``RateLimit`` lists the request
windows on every answer and the URL quotas when the answer knows them (a submission, GET /usage, a 429)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import http_sf
from django.http import HttpResponseBase

from linkmeter.web.plans.limits import PlanLimits, period_end, period_start
from linkmeter.web.plans.models import Period
from linkmeter.web.plans.ratelimit import RateDecision
from linkmeter.web.plans.selectors.usage import QuotaState

POLICY = "RateLimit-Policy"
STATE = "RateLimit"
RETRY_AFTER = "Retry-After"
QUOTA_NAMES = {Period.DAY: "urls-day", Period.MONTH: "urls-month"}


def policy_value(plan: PlanLimits, now: datetime) -> str:
    items: list[Any] = [
        (w.name, {"q": w.limit, "w": w.seconds}) for w in plan.rate_windows]
    for period in (Period.DAY, Period.MONTH):
        limit = plan.quota(period)
        if limit is None:
            continue
        window = 86400 if period == Period.DAY else _month_length(now)
        items.append((QUOTA_NAMES[period], {"q": limit, "qu": "urls", "w": window}))
    return http_sf.ser(items) if items else ""


def _month_length(now: datetime) -> int:
    start = period_start(Period.MONTH, now)
    end = period_end(Period.MONTH, now)
    return int((end - datetime(start.year, start.month, 1, tzinfo=end.tzinfo)).total_seconds())


def state_value(decision: RateDecision, quotas: Sequence[QuotaState], now: datetime) -> str:
    items: list[Any] = [
        (s.window.name, {"r": s.remaining, "t": s.reset_seconds}) for s in decision.windows]
    for quota in quotas:
        remaining = quota.remaining
        if remaining is None:
            continue
        items.append((QUOTA_NAMES[quota.period],
                      {"r": remaining, "t": max(0, math.ceil((quota.resets_at - now).total_seconds()))}))
    return http_sf.ser(items) if items else ""


def apply(response: HttpResponseBase, plan: PlanLimits, decision: RateDecision, now: datetime,
          quotas: Sequence[QuotaState] = (), retry_after: int | None = None) -> None:
    """Write the headers on ``response`` (nothing when the plan limits nothing)."""
    policy = policy_value(plan, now)
    if policy:
        response[POLICY] = policy
    state = state_value(decision, quotas, now)
    if state:
        response[STATE] = state
    if retry_after is not None:
        response[RETRY_AFTER] = str(max(1, retry_after))
