"""POST /feedback (many labels at once), GET /spam/models, POST /spam/train."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import ConfigDict, Field

from linkmeter.web.api.errors import ApiError
from linkmeter.web.api.schemas import ErrorOut
from linkmeter.web.links.models import FeedbackSource, SpamJobKind
from linkmeter.web.links.selectors import spam as selectors
from linkmeter.web.links.services import spam_learning
from linkmeter.web.links.services.errors import ServiceError
from linkmeter.web.links.services.feedback import MAX_BULK_ITEMS, feedback_bulk_create

feedback_router = Router(tags=["feedback"])
spam_router = Router(tags=["spam"])


class BulkFeedbackIn(Schema):
    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(description="[{url, label}, ...]: bad items are reported, the rest kept",
                                        max_length=MAX_BULK_ITEMS)


class BulkFeedbackOut(Schema):
    created: int
    replaced: int = Field(description="labels that replaced the same labeller's earlier label on the link")
    errors: list[dict[str, Any]] = Field(description="the refused items: {index, code, message, ...}")


@feedback_router.post("", url_name="feedback_bulk", response={200: BulkFeedbackOut, 422: ErrorOut},
                      summary="Label many URLs spam or ham; bad items reported by index, the rest kept")
def feedback_bulk(request: HttpRequest, payload: BulkFeedbackIn) -> dict[str, Any]:
    outcome = feedback_bulk_create(items=payload.items, source=FeedbackSource.BULK, user=request.user)
    return outcome.as_dict()


class TrainIn(Schema):
    model_config = ConfigDict(extra="forbid")

    promote: bool = Field(False, description="make the candidate active when it passes the check")


@spam_router.get("/models", url_name="spam_models", summary="The spam model versions, their figures, the labels")
def spam_models(request: HttpRequest) -> dict[str, Any]:
    spam_learning.spam_model_active()  # seeds the shipped model on first use
    return {"models": selectors.models_list(), "labels": selectors.label_counts(), "jobs": selectors.jobs_recent()}


@spam_router.post("/train", url_name="spam_train", response={202: dict[str, Any], 409: ErrorOut, 422: ErrorOut},
                  summary="Train a candidate now (in the background; one training at a time)")
def spam_train(request: HttpRequest, payload: TrainIn | None = None) -> Status[dict[str, Any]]:
    try:
        job = spam_learning.job_start(kind=SpamJobKind.TRAIN, trigger="demand",
                                      promote=bool(payload and payload.promote))
    except ServiceError as exc:
        raise ApiError(409 if exc.code == "job_running" else 422, exc.code, exc.message, exc.details) from exc
    return Status(202, selectors.job_summary(job))
