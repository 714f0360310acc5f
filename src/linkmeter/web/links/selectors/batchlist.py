"""The batches list: an account's batches filtered (name, status, source, dates), sorted, one keyset page at a
time, each with its progress (counted for the page's batches in one query)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.db.models import Count, F, OrderBy, Q, QuerySet

from linkmeter.web.links.models import FINAL_STATUSES, AnalysisStatus, Batch, BatchItem, BatchSource
from linkmeter.web.links.selectors import owned
from linkmeter.web.links.selectors.progress import BatchProgress, batch_callback
from linkmeter.web.links.selectors.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SearchError,
    Sort,
    encode_cursor,
    parse_moment,
    position,
)

BATCH_COLUMNS: dict[str, str] = {"created_at": "created_at", "total": "total", "name": "name", "id": "id"}
BatchState = Literal["open", "finished"]


@dataclass(frozen=True, slots=True)
class BatchQuery:
    text: str = ""
    state: BatchState | None = None
    sources: tuple[str, ...] = ()
    after: datetime | None = None
    before: datetime | None = None
    sort: Sort = field(default_factory=lambda: Sort("created_at", True))
    limit: int = DEFAULT_LIMIT
    cursor: tuple[Any, int] | None = None


def parse_batch_query(*, q: str = "", status: str = "", source: Sequence[str] = (), after: str = "",
                      before: str = "", sort: str = "", limit: int | None = None, cursor: str = "") -> BatchQuery:
    if status not in ("", "open", "finished"):
        raise SearchError("invalid_status", "status: open (still running or queued) or finished",
                          parameter="status", given=status)
    sources = [part.strip() for value in source for part in value.split(",") if part.strip()]
    for value in sources:
        if value not in BatchSource.values:
            raise SearchError("invalid_source", f"source {value!r}: one of {', '.join(BatchSource.values)}",
                              parameter="source", given=value)
    text = (sort or "-created_at").strip()
    order = Sort(text.lstrip("-+"), text.startswith("-"))
    if order.key not in BATCH_COLUMNS:
        raise SearchError("invalid_sort", f"cannot sort batches by {order.key!r}: one of {', '.join(BATCH_COLUMNS)}",
                          parameter="sort", given=text)
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise SearchError("invalid_limit", f"limit must be 1 to {MAX_LIMIT}", parameter="limit", given=str(limit))
    position = _decode(cursor, order) if cursor else None
    return BatchQuery(q.strip(), status or None, tuple(sources),  # type: ignore[arg-type]
                      parse_moment(after, "after") if after else None,
                      parse_moment(before, "before") if before else None, order, limit or DEFAULT_LIMIT, position)


def _decode(text: str, sort: Sort) -> tuple[Any, int]:
    try:
        sort_text, value, batch_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise SearchError("invalid_cursor", "the cursor is not one this API gave", parameter="cursor",
                          given=text) from None
    kinds: dict[str, type] = {"created_at": str, "name": str, "total": int, "id": int}
    if sort_text != sort.text or not isinstance(batch_id, int) or not isinstance(value, kinds[sort.key]):
        raise SearchError("invalid_cursor", "the cursor belongs to another sort or is damaged",
                          parameter="cursor", given=text)
    return (parse_moment(str(value), "cursor") if sort.key == "created_at" else value), batch_id


def filtered_batches(owner: Any, query: BatchQuery) -> QuerySet[Batch]:
    rows = owned.batches(owner).annotate(sort_key=F(BATCH_COLUMNS[query.sort.key]))
    if query.text:
        matches = Q(name__icontains=query.text)
        if query.text.isdigit() and int(query.text) < 2**63:
            matches |= Q(pk=int(query.text))
        rows = rows.filter(matches)
    if query.state == "finished":
        rows = rows.filter(finished_at__isnull=False)
    elif query.state == "open":
        rows = rows.filter(finished_at__isnull=True)
    if query.sources:
        rows = rows.filter(source__in=query.sources)
    if query.after:
        rows = rows.filter(created_at__gte=query.after)
    if query.before:
        rows = rows.filter(created_at__lt=query.before)
    order: list[OrderBy] = ([F("sort_key").desc(), F("id").desc()] if query.sort.descending
                            else [F("sort_key").asc(), F("id").asc()])
    return rows.order_by(*order)


def _after(query: BatchQuery, value: Any, batch_id: int) -> Q:
    if query.sort.descending:
        return Q(sort_key__lte=value) & (Q(sort_key__lt=value) | Q(sort_key=value, id__lt=batch_id))
    return Q(sort_key__gte=value) & (Q(sort_key__gt=value) | Q(sort_key=value, id__gt=batch_id))


def progress_of(batches: list[Batch]) -> list[BatchProgress]:
    """The progress of each batch (``progress.batch_progress``), counted in one grouped query."""
    counts: dict[int, dict[str, int]] = {b.pk: {status: 0 for status in AnalysisStatus.values} for b in batches}
    for row in (BatchItem.objects.filter(batch_id__in=list(counts)).values("batch_id", "analysis__status")
                .annotate(n=Count("id")).order_by()):
        counts[row["batch_id"]][row["analysis__status"]] += row["n"]
    out = []
    for batch in batches:
        by_status = counts[batch.pk]
        total = sum(by_status.values())
        finished = sum(by_status[s] for s in FINAL_STATUSES)
        out.append(BatchProgress(batch.pk, batch.name, total, by_status, finished,
                                 finished / total if total else 1.0, None, batch.created_at, batch.finished_at,
                                 list(batch.invalid), batch_callback(batch), tuple(batch.providers)))
    return out


def batch_row(item: BatchProgress, source: str) -> dict[str, Any]:
    data = item.as_dict()
    del data["invalid"], data["eta_seconds"]
    data["source"] = source
    data["invalid_count"] = len(item.invalid)
    return data


@dataclass(frozen=True, slots=True)
class BatchPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def _page(owner: Any, query: BatchQuery, cursor: tuple[Any, int] | None, limit: int) -> tuple[list[Batch], bool]:
    rows = filtered_batches(owner, query)
    if cursor is not None:
        rows = rows.filter(_after(query, *cursor))
    found = list(rows[:limit + 1])
    return found[:limit], len(found) > limit


def _rows(batches: list[Batch]) -> list[dict[str, Any]]:
    return [batch_row(item, batch.source) for item, batch in zip(progress_of(batches), batches, strict=True)]


def batch_search(owner: Any, query: BatchQuery) -> BatchPage:
    batches, more = _page(owner, query, query.cursor, query.limit)
    last = batches[-1] if batches else None
    cursor = encode_cursor(query.sort, *position(last)) if more and last else None
    return BatchPage(_rows(batches), cursor)


def batch_search_all(owner: Any, query: BatchQuery, *, chunk: int = 500) -> Iterator[list[dict[str, Any]]]:
    cursor = query.cursor
    while True:
        batches, more = _page(owner, query, cursor, chunk)
        if batches:
            yield _rows(batches)
        if not more:
            return
        cursor = position(batches[-1])
