"""GET /batches (the list with progress: filters, sorts, cursor pages, streamed exports), GET /batches/{id}
(progress) and GET /batches/{id}/results (streamed: JSON, NDJSON or CSV)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from ninja import Router
from ninja.params import P, QueryEx

from linkmeter.web.api.errors import ApiError, not_found
from linkmeter.web.api.exports import BATCH_CSV_COLUMNS, MEDIA_TYPES, Row, batch_list_cells, encode
from linkmeter.web.api.listing import check_format, search_error, streamed
from linkmeter.web.api.schemas import BatchListOut, BatchOut, ErrorOut
from linkmeter.web.links.models import Batch
from linkmeter.web.links.selectors import batchlist, details, progress, tables
from linkmeter.web.links.selectors.search import SearchError

router = Router(tags=["batches"])

CHUNK_ROWS = 500


def _batch(request: HttpRequest, batch_id: int) -> Batch:
    batch = details.batch_by_id(batch_id, request.user)
    if batch is None:
        raise not_found("batch", batch_id)
    return batch


def _batch_query(request: HttpRequest, **given: Any) -> tuple[batchlist.BatchQuery, Any]:
    user = request.user
    getattr(user, "pk", None)  # resolved here, in a worker thread
    try:
        return batchlist.parse_batch_query(source=request.GET.getlist("source"), **given), user
    except SearchError as exc:
        raise search_error(exc) from exc


def _batch_page(user: Any, query: batchlist.BatchQuery) -> dict[str, Any]:
    page = batchlist.batch_search(user, query)
    return {"items": page.rows, "next_cursor": page.next_cursor}


@router.get("", url_name="batch_list", response={200: BatchListOut, 422: ErrorOut},
            openapi_extra={"responses": {200: {
                "description": "one page of your batches with their progress; with `format`: every matching "
                               "batch, streamed",
                "content": {media: {} for media in MEDIA_TYPES.values()},
            }}},
            summary="Your batches with their progress, filtered, sorted and paged (or exported)")
async def batch_list(
    request: HttpRequest,
    q: QueryEx[str, P(description="text in the name, or the batch id")] = "",
    status: QueryEx[str, P(description="open (not every analysis has ended) or finished")] = "",
    source: QueryEx[str, P(description="api, paste, csv or cli; comma-separated or repeated")] = "",
    after: QueryEx[str, P(description="created at or after (ISO date or date and time)")] = "",
    before: QueryEx[str, P(description="created before (ISO date or date and time)")] = "",
    sort: QueryEx[str, P(description="created_at, total, name or id; '-' first for descending "
                                     "(default -created_at)")] = "",
    limit: QueryEx[int | None, P(description="rows per page, 1-500 (default 50)")] = None,
    cursor: QueryEx[str, P(description="next_cursor of the previous page")] = "",
    format: QueryEx[str, P(description="csv, json or ndjson: every matching batch, streamed")] = "",
) -> Any:
    if format:
        check_format(format)
    query, user = await sync_to_async(_batch_query)(request, q=q, status=status, after=after, before=before,
                                                    sort=sort, limit=limit, cursor=cursor)
    if format:
        return streamed(batchlist.batch_search_all(user, query), format, filename="batches",
                        columns=BATCH_CSV_COLUMNS, cells=batch_list_cells)
    return await sync_to_async(_batch_page)(user, query)


@router.get("/{int:batch_id}", url_name="batch_progress", response={200: BatchOut, 404: ErrorOut},
            summary="A batch's progress: counts by status, progress, ETA, invalid lines")
def batch_progress(request: HttpRequest, batch_id: int) -> dict[str, Any]:
    data = progress.batch_progress(_batch(request, batch_id)).as_dict()
    data["links"] = {"results": reverse("api-v1:batch_results", kwargs={"batch_id": batch_id})}
    return data


def _take(rows: Iterator[Row], n: int) -> list[Row]:
    return list(itertools.islice(rows, n))


async def _row_chunks(batch: Batch, spam: bool | None = None) -> AsyncIterator[list[Row]]:
    """The rows in chunks, each read in a worker thread, so the event loop never waits on the database."""
    rows = (details.batch_rows(batch, chunk_size=CHUNK_ROWS) if spam is None
            else tables.batch_export_rows(batch, spam=spam, chunk_size=CHUNK_ROWS))
    try:
        while chunk := await sync_to_async(_take)(rows, CHUNK_ROWS):
            yield chunk
    finally:
        close = getattr(rows, "close", None)  # a generator: closes its database cursor in the same thread
        if close is not None:
            await sync_to_async(close)()


@router.get("/{int:batch_id}/results", url_name="batch_results",
            response={200: None, 404: ErrorOut, 422: ErrorOut},
            openapi_extra={"responses": {200: {
                "description": "one row per submitted valid URL in input order; rows not final yet have "
                               "their status and empty signals",
                "content": {media: {} for media in MEDIA_TYPES.values()},
            }}},
            summary="A batch's results, streamed (partial while it runs)")
async def batch_results(
    request: HttpRequest, batch_id: int,
    format: QueryEx[str, P(description="json (one array), ndjson (one object per line) or csv")] = "json",
    spam: QueryEx[str | None, P(description="flagged: only the links flagged spam (spam.flag true); clear: only "
                                            "those not flagged; rows without a verdict are left out")] = None,
) -> StreamingHttpResponse:
    if format not in MEDIA_TYPES:
        raise ApiError(422, "invalid_format", f"format must be one of {', '.join(MEDIA_TYPES)}",
                       {"allowed": list(MEDIA_TYPES), "given": format})
    if spam not in (None, "flagged", "clear"):
        raise ApiError(422, "invalid_spam", "spam must be flagged or clear", {"allowed": ["flagged", "clear"],
                                                                            "given": spam})
    batch = await sync_to_async(_batch)(request, batch_id)
    wanted = None if spam is None else spam == "flagged"
    response = StreamingHttpResponse(encode(_row_chunks(batch, wanted), format), content_type=MEDIA_TYPES[format])
    response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}.{format}"'
    response["Cache-Control"] = "no-store"  # partial while the batch runs
    return response
