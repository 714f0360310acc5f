"""Every API request of an account: its plan's request rate limits checked (429 ``rate_limited`` with
``Retry-After``) and the rate-limit headers written on the answer, whatever it is. GET /api/v1/usage is not
counted. Requests without an account (local mode, no login) run on the unlimited plan and carry no headers.
Runs after the authentication middleware: the account is ``request.user`` (read with ``auser()``), the key
(for the per-key usage) ``request.api_key`` when the accounts app sets one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils import timezone

from linkmeter.web.plans import headers
from linkmeter.web.plans.limits import PlanLimits
from linkmeter.web.plans.ratelimit import limiter
from linkmeter.web.plans.selectors.plans import cached_plan, plan_for

API_PREFIX = "/api/v1/"
NOT_COUNTED = ("/api/v1/usage",)


async def request_account(request: HttpRequest) -> AbstractBaseUser | AnonymousUser | None:
    """The request's account, or None. An authentication middleware that resolved it (the accounts app: a
    key's owner, the local owner) has put a User on ``request.user``; otherwise the session's, read without
    blocking the event loop."""
    resolved: object = request.__dict__.get("user")
    if issubclass(type(resolved), AbstractBaseUser):  # type(), not isinstance: a lazy user stays unread
        account = cast(AbstractBaseUser, resolved)
        return account if account.is_authenticated else None
    auser = getattr(request, "auser", None)
    if auser is None:
        return None
    user: AbstractBaseUser | AnonymousUser = await auser()
    return user if user.is_authenticated else None


def subject(user: AbstractBaseUser | AnonymousUser) -> str:
    """Whose windows a request counts in: the account's (every key of an account shares its plan)."""
    return f"user:{user.pk}"


class PlanLimitsMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        if not iscoroutinefunction(get_response):
            raise TypeError("PlanLimitsMiddleware needs an async middleware chain (ASGI)")
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not request.path.startswith(API_PREFIX):
            return await self.get_response(request)
        user = await request_account(request)
        if user is None:
            return await self.get_response(request)
        plan: PlanLimits = cached_plan(user) or await sync_to_async(plan_for)(user)  # a hop only to look it up
        request.plan = plan  # type: ignore[attr-defined]  # the handlers' view of the account's plan
        counted = not request.path.startswith(NOT_COUNTED)
        rates = limiter()
        decision = await (rates.hit(subject(user), plan) if counted else rates.peek(subject(user), plan))
        if counted and not decision.allowed:
            response: HttpResponseBase = JsonResponse(
                {"code": "rate_limited", "message": f"too many requests for the {plan.name} plan; retry in "
                                                    f"{decision.retry_after} s",
                 "details": {"retry_after": decision.retry_after, "plan": plan.code,
                             "limits": [{"window_seconds": s.window.seconds, "limit": s.window.limit}
                                        for s in decision.windows if s.remaining <= 0]}},
                status=429)
            headers.apply(response, plan, decision, timezone.now(), retry_after=decision.retry_after)
            return response
        response = await self.get_response(request)
        quotas = getattr(request, "plan_quotas", ())
        refused_after = getattr(request, "plan_retry_after", None)
        headers.apply(response, plan, decision, timezone.now(), quotas, retry_after=refused_after)
        return response
