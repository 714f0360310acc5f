"""One racing process of the plans' integration tests (``python -m tests.integration.plans_racer MODE``):
``setup`` migrates and puts the account on a plan; ``quota`` submits small batches until its quota refuses;
``flight`` submits small batches (nothing runs them) until its URLs in flight are refused; ``rate`` hits the API
rate limiter for a while; ``usage`` prints the account's usage. Each prints JSON."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from typing import Any

import django

RACER = "racer"


def _setup() -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from linkmeter.web.plans.models import AccountPlan, Plan

    call_command("migrate", verbosity=0)
    in_flight = os.environ.get("RACE_IN_FLIGHT")  # set: a race for the URLs in flight, with no quota
    plan, _ = Plan.objects.update_or_create(code="race", defaults={
        "name": "Race", "daily_urls": None if in_flight else int(os.environ["RACE_LIMIT"]), "monthly_urls": None,
        "max_batch": None, "max_in_flight": int(in_flight) if in_flight else None, "rate_per_second": None,
        "rate_per_minute": None, "providers": []})
    user = User.objects.create_user(RACER)
    AccountPlan.objects.create(user=user, plan=plan)
    return {"user": user.pk}


def _wait_for_start() -> None:
    time.sleep(max(0.0, float(os.environ["RACE_START"]) - time.time()))


def _quota(tag: str) -> dict[str, Any]:
    from django.contrib.auth.models import User

    from linkmeter.web.plans.selectors.plans import plan_for
    from linkmeter.web.plans.services.errors import PlanRefused
    from linkmeter.web.plans.services.submission import plan_submission_submit

    user = User.objects.get(username=RACER)
    plan = plan_for(user)
    accepted = refused = 0
    _wait_for_start()
    for attempt in range(400):
        size = 1 + attempt % 3
        urls = [f"https://race.example.org/{tag}/{attempt}/{i}" for i in range(size)]
        try:
            plan_submission_submit(user=user, plan=plan, urls=urls)
        except PlanRefused as exc:
            refused += 1
            if exc.details["remaining"] == 0:
                break
        else:
            accepted += size
    return {"accepted": accepted, "refused": refused}


def _flight(tag: str) -> dict[str, Any]:
    from django.contrib.auth.models import User

    from linkmeter.web.plans.selectors.plans import plan_for
    from linkmeter.web.plans.services.errors import PlanRefused
    from linkmeter.web.plans.services.submission import plan_submission_submit

    user = User.objects.get(username=RACER)
    plan = plan_for(user)
    accepted = 0
    codes: list[str] = []
    _wait_for_start()
    for attempt in range(400):
        size = 1 + attempt % 3
        urls = [f"https://flight.example.org/{tag}/{attempt}/{i}" for i in range(size)]
        try:
            plan_submission_submit(user=user, plan=plan, urls=urls)
        except PlanRefused as exc:
            codes.append(exc.code)
            if len(codes) >= 3:  # nothing runs the analyses: the account stays at its limit
                break
        else:
            accepted += size
    return {"accepted": accepted, "refused": codes}


def _queued() -> dict[str, Any]:
    from linkmeter.web.links.models import Analysis, AnalysisStatus

    return {"queued": Analysis.objects.filter(requested_by__username=RACER, status=AnalysisStatus.QUEUED).count()}


def _rate() -> dict[str, Any]:
    from linkmeter.web.plans.limits import FALLBACK_PLANS
    from linkmeter.web.plans.ratelimit import limiter

    plan = dataclasses.replace(FALLBACK_PLANS["free"], rate_per_second=None,
                               rate_per_minute=int(os.environ["RACE_LIMIT"]))

    async def hammer() -> int:
        allowed = 0
        _wait_for_start()
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            allowed += (await limiter().hit("user:race", plan)).allowed
        return allowed

    return {"allowed": asyncio.run(hammer())}


def _usage() -> dict[str, Any]:
    from django.contrib.auth.models import User

    from linkmeter.web.plans.selectors.plans import plan_for
    from linkmeter.web.plans.selectors.usage import account_usage

    user = User.objects.get(username=RACER)
    return account_usage(user.pk, plan_for(user))


def main(mode: str, tag: str = "") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")
    django.setup()
    result = {"setup": _setup, "quota": lambda: _quota(tag), "flight": lambda: _flight(tag),
              "queued": _queued, "rate": _rate, "usage": _usage}[mode]()
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
