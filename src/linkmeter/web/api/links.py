"""GET /links?url=... (latest analysis and history summary), GET /links/{id}/history, POST feedback."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Status
from ninja.params import P, QueryEx

from linkmeter.engine.urls import InvalidURL, parse_url
from linkmeter.web.api.errors import ApiError, not_found
from linkmeter.web.api.schemas import ErrorOut, FeedbackIn, FeedbackOut, LinkHistoryOut, LinkOut
from linkmeter.web.links.models import FeedbackSource, Link
from linkmeter.web.links.selectors import details
from linkmeter.web.links.services.feedback import feedback_create

router = Router(tags=["links"])


def _link(request: HttpRequest, link_id: int) -> Link:
    link = details.link_by_id(link_id, request.user)
    if link is None:
        raise not_found("link", link_id)
    return link


@router.get("", url_name="link_lookup", response={200: LinkOut, 404: ErrorOut, 422: ErrorOut},
            summary="A link by URL: its latest analysis and a summary of its history")
def link_lookup(request: HttpRequest,
                url: QueryEx[str, P(description="the URL, normalised the same way as submissions")],
                ) -> dict[str, Any]:
    try:
        normalised = parse_url(url, max_length=settings.LINKMETER["MAX_URL_LENGTH"]).url
    except InvalidURL as exc:
        raise ApiError(422, "invalid_url", exc.message, {"reason": exc.code}) from exc
    link = details.link_by_url(normalised, request.user)
    if link is None:
        raise ApiError(404, "not_found", "this URL has never been submitted", {"kind": "link", "url": normalised})
    data = details.link_detail(link, request.user)
    data["links"] = {
        "history": reverse("api-v1:link_history", kwargs={"link_id": link.pk}),
        "feedback": reverse("api-v1:link_feedback", kwargs={"link_id": link.pk}),
    }
    return data


@router.get("/{int:link_id}/history", url_name="link_history", response={200: LinkHistoryOut, 404: ErrorOut},
            summary="A link's final analyses, oldest first, with their signals")
def link_history(request: HttpRequest, link_id: int) -> dict[str, Any]:
    link = _link(request, link_id)
    history = details.link_history(link, request.user)
    return {"link_id": link.pk, "url": link.url, "analyses": details.history_entries(history),
            "series": details.numeric_series(history)}


@router.post("/{int:link_id}/feedback", url_name="link_feedback",
             response={201: FeedbackOut, 404: ErrorOut, 422: ErrorOut},
             summary="Label a link spam or ham (kept to train the spam model)")
def link_feedback(request: HttpRequest, link_id: int, payload: FeedbackIn) -> Status[dict[str, Any]]:
    link = _link(request, link_id)
    feedback = feedback_create(link=link, label=payload.label, user=request.user, source=FeedbackSource.API,
                               analysis=details.latest_analysis(link, request.user))
    return Status(201, {"id": feedback.pk, "link_id": feedback.link_id, "analysis_id": feedback.analysis_id,
                 "label": feedback.label, "created_at": feedback.created_at.isoformat()})
