"""GET /links (the list: filters, sorts, cursor pages, streamed exports; ?url=...: one link, its latest
analysis and history summary), GET /links/{id}/history, POST feedback."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Status
from ninja.params import P, QueryEx

from linkmeter.engine.urls import InvalidURL, parse_url
from linkmeter.web.api.errors import ApiError, not_found
from linkmeter.web.api.exports import LINK_CSV_COLUMNS, MEDIA_TYPES, link_cells
from linkmeter.web.api.listing import check_format, search_error, streamed
from linkmeter.web.api.schemas import ErrorOut, FeedbackIn, FeedbackOut, LinkHistoryOut, LinkListOut, LinkOut
from linkmeter.web.links.models import FeedbackSource, Link
from linkmeter.web.links.selectors import details, search
from linkmeter.web.links.services.feedback import feedback_create

router = Router(tags=["links"])


def _link(request: HttpRequest, link_id: int) -> Link:
    link = details.link_by_id(link_id, request.user)
    if link is None:
        raise not_found("link", link_id)
    return link


def _lookup(request: HttpRequest, url: str) -> dict[str, Any]:
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


def _query(request: HttpRequest, **given: Any) -> tuple[search.LinkQuery, Any]:
    """The parsed query and the caller (resolved here, in a worker thread: it may read the database)."""
    user = request.user
    getattr(user, "pk", None)
    try:
        return search.parse_link_query(status=request.GET.getlist("status"),
                                       provider=request.GET.getlist("provider"),
                                       filters=request.GET.getlist("filter"), **given), user
    except search.SearchError as exc:
        raise search_error(exc) from exc


def _page(user: Any, query: search.LinkQuery) -> dict[str, Any]:
    page = search.link_search(user, query)
    return {"items": page.rows, "next_cursor": page.next_cursor}


@router.get("", url_name="link_lookup",
            response={200: LinkListOut | LinkOut, 404: ErrorOut, 422: ErrorOut},
            openapi_extra={"responses": {200: {
                "description": "with `url`: that link (LinkOut); with `format`: every matching link, streamed; "
                               "else one page of the list (LinkListOut)",
                "content": {media: {} for media in MEDIA_TYPES.values()},
            }}},
            summary="Your links, filtered, sorted and paged (or exported); with url: one link by URL")
async def link_lookup(
    request: HttpRequest,
    url: QueryEx[str, P(description="one link by URL (normalised as submissions are): its latest analysis and "
                                    "history summary; the list's parameters are then ignored")] = "",
    q: QueryEx[str, P(description="text in the URL, title or domain (case-insensitive)")] = "",
    domain: QueryEx[str, P(description="the registered domain, exactly")] = "",
    status: QueryEx[str, P(description="analysis statuses, comma-separated: queued, running, done, partial, "
                                       "failed")] = "",
    provider: QueryEx[str, P(description="provider:status (e.g. dnsbl:error), repeatable: every one must "
                                         "hold")] = "",
    after: QueryEx[str, P(description="analysed at or after (ISO date or date and time; UTC by default)")] = "",
    before: QueryEx[str, P(description="analysed before (ISO date or date and time)")] = "",
    filter: QueryEx[str, P(description="signal comparison, repeatable or comma-separated: "
                                       "hackernews.points>100, spam.score>=0.8, spam.flag=true "
                                       "(operators > >= < <= = !=); docs/api.md")] = "",
    sort: QueryEx[str, P(description="analysed_at, url, domain, title, status or a numeric or boolean signal; "
                                     "'-' first for descending (default -analysed_at)")] = "",
    limit: QueryEx[int | None, P(description=f"rows per page, 1-{search.MAX_LIMIT} (default "
                                             f"{search.DEFAULT_LIMIT})")] = None,
    cursor: QueryEx[str, P(description="next_cursor of the previous page")] = "",
    format: QueryEx[str, P(description="csv, json or ndjson: every matching row from the cursor on, "
                                       "streamed, instead of a page")] = "",
) -> Any:
    if "url" in request.GET:  # even empty: a lookup of nothing is an invalid URL, not the list
        return await sync_to_async(_lookup)(request, url)
    if format:
        check_format(format)
    query, user = await sync_to_async(_query)(request, q=q, domain=domain, after=after, before=before, sort=sort,
                                        limit=limit, cursor=cursor)
    if format:
        return streamed(search.link_search_all(user, query), format, filename="links",
                        columns=LINK_CSV_COLUMNS, cells=link_cells)
    return await sync_to_async(_page)(user, query)


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
