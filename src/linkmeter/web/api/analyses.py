"""POST /analyses (submit, optionally wait for the results) and GET /analyses/{id}."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Status
from ninja.params import P, QueryEx

from linkmeter.web import dbcalls
from linkmeter.web.api.errors import ApiError, not_found
from linkmeter.web.api.schemas import AnalysisOut, ErrorOut, SubmitAcceptedOut, SubmitDoneOut, SubmitIn
from linkmeter.web.links.selectors import details
from linkmeter.web.links.services.submission import Submission
from linkmeter.web.plans.limits import PlanLimits
from linkmeter.web.plans.middleware import request_account
from linkmeter.web.plans.selectors.plans import cached_plan, plan_for
from linkmeter.web.plans.selectors.usage import quota_states
from linkmeter.web.plans.services.submission import plan_submission_submit

router = Router(tags=["analyses"])

POLL_FIRST = 0.05  # seconds between polls while waiting, growing to POLL_MAX
POLL_MAX = 0.5


def checked_wait(wait: float | None) -> float | None:
    limit = settings.LINKMETER["MAX_WAIT_SECONDS"]
    if wait is not None and not (math.isfinite(wait) and 0 <= wait <= limit):
        raise ApiError(422, "invalid_wait", f"wait must be between 0 and {limit} seconds",
                       {"min": 0, "max": limit, "given": wait if math.isfinite(wait) else str(wait)})
    return wait


async def wait_until_final(analysis_ids: list[int], seconds: float) -> bool:
    """Poll the database without blocking the event loop until every analysis is final or time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    pause = POLL_FIRST
    while True:
        if await dbcalls.run(details.analyses_unfinished, analysis_ids) == 0:
            return True
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 1.5, POLL_MAX)


def submission_body(submission: Submission) -> dict[str, Any]:
    batch_id = submission.batch.pk
    return {
        "batch_id": batch_id,
        "analysis_ids": [a.pk for a in submission.analyses],
        "reused": submission.reused,
        "queued": len(submission.queued),
        "invalid": [item.as_dict() for item in submission.invalid],
        "links": {
            "batch": reverse("api-v1:batch_progress", kwargs={"batch_id": batch_id}),
            "results": reverse("api-v1:batch_results", kwargs={"batch_id": batch_id}),
        },
    }


@router.post("", url_name="analyses_submit",
             response={200: SubmitDoneOut, 202: SubmitAcceptedOut, 403: ErrorOut, 413: ErrorOut, 422: ErrorOut,
                       429: ErrorOut},
             summary="Submit URLs for analysis")
async def analyses_submit(
    request: HttpRequest,
    payload: SubmitIn,
    wait: QueryEx[float | None, P(description="answer with the results when every analysis finishes within "
                                             "this many seconds (0..30); otherwise 202")] = None,
) -> Status[dict[str, Any]]:
    """Valid URLs are queued (or answered by a young enough earlier analysis unless `fresh`); invalid ones
    are listed with their index and reason. 202 with the batch and analysis ids, or 200 with `results`
    when `wait` is given and everything is final in time. The account's plan applies: 422 `batch_too_large`,
    403 `provider_not_allowed`, 429 `quota_exhausted` or `too_many_in_flight`, and nothing is counted then."""
    seconds = checked_wait(wait)
    # request.user is the account the auth middleware resolved (a key's owner, or the local owner).
    user = await request_account(request)
    plan: PlanLimits | None = getattr(request, "plan", None) or cached_plan(user)
    if plan is None:
        plan = await dbcalls.run(plan_for, user)
    key = getattr(request, "api_key", None)

    def submit() -> Submission:
        planned = plan_submission_submit(
            user=user, plan=plan, urls=payload.urls, providers=payload.providers, fresh=payload.fresh,
            name=payload.name, max_age=payload.max_age, callback_url=payload.callback_url or "",
            key_id=getattr(key, "pk", 0) or 0, key_label=str(getattr(key, "name", "") or ""))
        if user is not None and user.pk is not None:
            request.plan_quotas = quota_states(user.pk, plan, used=planned.used)  # type: ignore[attr-defined]
        return planned.submission

    submission = await dbcalls.run(submit)
    body = submission_body(submission)
    if seconds is None or not await wait_until_final(body["analysis_ids"], seconds):
        return Status(202, body)
    body["results"] = await dbcalls.run(details.analysis_details, body["analysis_ids"])
    return Status(200, body)


@router.get("/{int:analysis_id}", url_name="analysis_detail", response={200: AnalysisOut, 404: ErrorOut},
            exclude_unset=True, summary="One analysis with every provider's result")
async def analysis_detail(request: HttpRequest, analysis_id: int,
                          raw: QueryEx[bool, P(description="include each provider's raw response")] = False,
                          ) -> dict[str, Any]:
    # Async, with its reads in one hop: a sync view costs a thread (and a connection) per request.
    found = await dbcalls.run(_detail, analysis_id, request, raw)
    if found is None:
        raise not_found("analysis", analysis_id)
    return found


def _detail(analysis_id: int, request: HttpRequest, raw: bool) -> dict[str, Any] | None:
    return details.analysis_detail_of(analysis_id, request.user, include_raw=raw)  # request.user may be lazy
