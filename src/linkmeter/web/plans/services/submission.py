"""A submission under the account's plan: batch size, providers, URLs in flight and the quotas checked, the
analyses queued at the plan's priority, all in one transaction (refused work consumes nothing). The URLs in
flight are counted under a lock of the account's row, so two web processes cannot both pass the limit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction

from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.links.models import Analysis, AnalysisStatus, BatchSource
from linkmeter.web.links.services.submission import Submission, analysis_submit, validate_providers
from linkmeter.web.plans.limits import PlanLimits
from linkmeter.web.plans.models import Period
from linkmeter.web.plans.services.errors import PlanRefused
from linkmeter.web.plans.services.quota import quota_reserve

IN_FLIGHT_RETRY = 5  # seconds suggested to a client over its plan's URLs in flight


@dataclass(slots=True)
class PlannedSubmission:
    submission: Submission
    used: dict[Period, int] = field(default_factory=dict)  # each quota's count after this submission


def plan_providers(plan: PlanLimits, providers: Sequence[str] | None) -> list[str]:
    """The selection to run: the named providers (each must be on the plan: 403 ``provider_not_allowed``), or,
    when none is named, the default set, narrowed to the plan's providers when it leaves some out."""
    chosen = validate_providers(providers)
    if chosen:
        refused = [name for name in chosen if not plan.allows_provider(name)]
        if refused:
            raise PlanRefused(403, "provider_not_allowed",
                              f"the {plan.name} plan does not include {', '.join(refused)}",
                              {"plan": plan.code, "refused": refused, "allowed": list(plan.providers)})
        return chosen
    default = [cls.name for cls in PROVIDER_CLASSES if cls.in_default_set]
    if all(plan.allows_provider(name) for name in default):
        return []
    return [name for name in default if plan.allows_provider(name)]


def plan_submission_submit(
    *, user: AbstractBaseUser | AnonymousUser | None, plan: PlanLimits, urls: Sequence[str],
    providers: Sequence[str] | None = None, fresh: bool = False, name: str = "", source: str = BatchSource.API,
    max_age: float | None = None, callback_url: str = "", key_id: int = 0, key_label: str = "",
) -> PlannedSubmission:
    """``analysis_submit`` under ``plan``: raises PlanRefused (422 ``batch_too_large``, 403
    ``provider_not_allowed``, 429 ``too_many_in_flight`` or ``quota_exhausted``) before anything is kept."""
    if plan.max_batch is not None and len(urls) > plan.max_batch:
        raise PlanRefused(422, "batch_too_large",
                          f"{len(urls)} URLs in one submission; the {plan.name} plan allows {plan.max_batch}",
                          {"limit": plan.max_batch, "given": len(urls), "plan": plan.code})
    chosen = plan_providers(plan, providers)
    account = user if isinstance(user, User) else None
    with transaction.atomic():
        if account is not None and plan.max_in_flight is not None:
            _lock_account(account)
        submission = analysis_submit(urls=urls, providers=chosen, fresh=fresh, name=name, source=source,
                                     max_age=max_age, user=account, callback_url=callback_url,
                                     priority=plan.analysis_priority(len(urls)))
        used: dict[Period, int] = {}
        if account is not None:
            _check_in_flight(account, plan)
            used = quota_reserve(user_id=account.pk, plan=plan, urls=submission.batch.total, key_id=key_id,
                                 key_label=key_label)
    return PlannedSubmission(submission, used)


def _lock_account(user: User) -> None:
    """Holds the account's row until the submission commits: a second submission of the account (another web
    process) waits here, and its count of URLs in flight then sees this one's analyses. PostgreSQL's READ
    COMMITTED alone would let both count before either commits, and both pass. SQLite needs no lock: its
    IMMEDIATE transactions already run one writer at a time (select_for_update is a no-op there)."""
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def _check_in_flight(user: User, plan: PlanLimits) -> None:
    if plan.max_in_flight is None:
        return
    in_flight = Analysis.objects.filter(requested_by=user,
                                        status__in=[AnalysisStatus.QUEUED, AnalysisStatus.RUNNING]).count()
    if in_flight > plan.max_in_flight:
        raise PlanRefused(429, "too_many_in_flight",
                          f"{in_flight} URLs would be queued or running; the {plan.name} plan allows "
                          f"{plan.max_in_flight} at once", {"limit": plan.max_in_flight, "plan": plan.code},
                          retry_after=IN_FLIGHT_RETRY)
